// CUDA wrapper of sop_loss_step_: the same checks as the CPU (index contract included), then the launch.
#include "cuda/launchers.h"
#include "sop_args.h"

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace dopfast::cuda {
namespace {

SopDtype sop_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return SopDtype::f32;
    case at::kDouble: return SopDtype::f64;
    case at::kHalf: return SopDtype::f16;
    case at::kBFloat16: return SopDtype::bf16;
    default:
      TORCH_CHECK(false, "dopfast.sop_loss_step_: logits must be float16, bfloat16, float32 or float64, got ", t);
  }
}

std::tuple<at::Tensor, at::Tensor> sop_loss_step_cuda(const at::Tensor& logits, const at::Tensor& targets,
                                                      const at::Tensor& index, at::Tensor& u, at::Tensor& v,
                                                      double lr_u, double lr_v, bool paper) {
  check_sop_args(logits, targets, index, u, v, lr_u, lr_v, paper);
  // The range and uniqueness checks need the indices on the host: one small copy (and synchronisation) per
  // call, which an out-of-range index faulting the CUDA context or two warps racing on one row would cost more.
  check_sop_indices(targets, index, logits.size(1), v.size(0));
  const SopDtype dt = sop_dtype(logits.scalar_type());
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), K = logits.size(1);
  const at::Tensor z = logits.contiguous(), tc = targets.contiguous(), ic = index.contiguous();
  InplaceContiguous uw(u), vw(v);
  at::Tensor grad = at::empty({B, K}, z.options());
  at::Tensor sample_loss = at::empty({B}, z.options().dtype(at::kDouble));
  at::Tensor loss = at::empty({}, z.options().dtype(dt == SopDtype::f64 ? at::kDouble : at::kFloat));
  launch_sop_step(dt, u.scalar_type() == at::kDouble, z.const_data_ptr(), tc.const_data_ptr<int64_t>(),
                  ic.const_data_ptr<int64_t>(), uw.work.mutable_data_ptr(), u.size(1), vw.work.mutable_data_ptr(),
                  grad.mutable_data_ptr(), sample_loss.mutable_data_ptr<double>(), loss.mutable_data_ptr(), B, K, lr_u,
                  lr_v, paper, c10::cuda::getCurrentCUDAStream());
  uw.finish();
  vw.finish();
  return {loss, grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CUDA, m) { m.impl("sop_loss_step_", &sop_loss_step_cuda); }

}  // namespace dopfast::cuda
