// CUDA wrappers of the residual family: checks, device guard, allocation, then the raw launchers.
#include "cuda/launchers.h"
#include "residual_args.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <optional>

namespace dopfast::cuda {
namespace {

at::Tensor residual_step_into(const at::Tensor& x, at::Tensor& g, at::Tensor& h, const at::Tensor& y, double step,
                              const std::optional<at::Tensor>& mask, at::Tensor& r_contig) {
  const at::Tensor xc = x.contiguous(), yc = y.contiguous();
  const at::Tensor mc = mask ? mask->contiguous() : at::Tensor();
  InplaceContiguous gw(g), hw(h);
  const int64_t n = x.numel();
  at::Tensor partial = at::empty({residual_step_max_grid()}, x.options().dtype(at::kDouble));
  at::Tensor loss = at::empty({}, x.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dopfast_residual_step_cuda", [&] {
    launch_residual_step<scalar_t>(xc.const_data_ptr<scalar_t>(), gw.work.mutable_data_ptr<scalar_t>(),
                                   hw.work.mutable_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
                                   mask ? mc.const_data_ptr<bool>() : nullptr, r_contig.mutable_data_ptr<scalar_t>(), n,
                                   static_cast<scalar_t>(step), partial.mutable_data_ptr<double>(),
                                   loss.mutable_data_ptr<scalar_t>(), stream);
  });
  gw.finish();
  hw.finish();
  return loss;
}

std::tuple<at::Tensor, at::Tensor> residual_step_cuda(const at::Tensor& x, at::Tensor& g, at::Tensor& h,
                                                      const at::Tensor& y, double step,
                                                      const std::optional<at::Tensor>& mask) {
  // Only a CUDA x gets a guard: a CPU x with a CUDA mask lands here, and the checks must name it.
  const c10::cuda::OptionalCUDAGuard guard(x.is_cuda() ? std::optional<c10::Device>(x.device()) : std::nullopt);
  return residual_step_op(x, g, h, y, step, mask, residual_step_into,
                          [](const at::Tensor& like) { return at::empty(like.sizes(), like.options()); });
}

at::Tensor residual_step_out_cuda(const at::Tensor& x, at::Tensor& g, at::Tensor& h, const at::Tensor& y, double step,
                                  at::Tensor& r, const std::optional<at::Tensor>& mask) {
  const c10::cuda::OptionalCUDAGuard guard(x.is_cuda() ? std::optional<c10::Device>(x.device()) : std::nullopt);
  return residual_step_out_op(x, g, h, y, step, r, mask, residual_step_into);
}

at::Tensor dop_residual_cuda(const at::Tensor& x, const at::Tensor& g, const at::Tensor& h, const at::Tensor& y) {
  check_residual_args("dop_residual", x, g, h, y);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), gc = g.contiguous(), hc = h.contiguous(), yc = y.contiguous();
  at::Tensor r = at::empty(x.sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dopfast_dop_residual_cuda", [&] {
    launch_dop_residual<scalar_t>(xc.const_data_ptr<scalar_t>(), gc.const_data_ptr<scalar_t>(),
                                  hc.const_data_ptr<scalar_t>(), yc.const_data_ptr<scalar_t>(),
                                  r.mutable_data_ptr<scalar_t>(), x.numel(), c10::cuda::getCurrentCUDAStream());
  });
  return r;
}

std::tuple<at::Tensor, at::Tensor> dop_residual_backward_cuda(const at::Tensor& grad, const at::Tensor& g,
                                                              const at::Tensor& h) {
  check_residual_backward_args(grad, g, h);
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor dc = grad.contiguous(), gc = g.contiguous(), hc = h.contiguous();
  at::Tensor grad_g = at::empty(g.sizes(), g.options()), grad_h = at::empty(h.sizes(), h.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "dopfast_dop_residual_backward_cuda", [&] {
    launch_dop_residual_backward<scalar_t>(dc.const_data_ptr<scalar_t>(), gc.const_data_ptr<scalar_t>(),
                                           hc.const_data_ptr<scalar_t>(), grad_g.mutable_data_ptr<scalar_t>(),
                                           grad_h.mutable_data_ptr<scalar_t>(), grad.numel(),
                                           c10::cuda::getCurrentCUDAStream());
  });
  return {grad_g, grad_h};
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CUDA, m) {
  m.impl("residual_step_", &residual_step_cuda);
  m.impl("residual_step_out_", &residual_step_out_cuda);
  m.impl("dop_residual", &dop_residual_cuda);
  m.impl("dop_residual_backward", &dop_residual_backward_cuda);
}

}  // namespace dopfast::cuda
