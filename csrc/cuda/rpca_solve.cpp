// CUDA rpca_dop_solve / rpca_dop_solve_uv: the one-block-per-problem kernel when a problem fits in shared
// memory, otherwise the fused loop (cuBLAS products around fused per-step kernels, graph-captured chunks).
#include "cuda/launchers.h"
#include "cuda/rpca_fused_loop.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace dopfast::cuda {
namespace {

RpcaOutputs rpca_solve_cuda_impl(std::string_view op, const at::Tensor& y, const at::Tensor& u0,
                                 const std::optional<at::Tensor>& v0, const at::Tensor& g0, const at::Tensor& h0,
                                 double tau, double alpha, int64_t iters, double tol,
                                 const std::optional<at::Tensor>& mask) {
  bool batched = false;
  RpcaOutputs out = prepare_rpca(op, y, u0, v0, g0, h0, tau, alpha, iters, tol, mask, batched);
  const c10::cuda::CUDAGuard guard(y.device());
  const at::Tensor y3 = (batched ? y : y.unsqueeze(0)).contiguous();
  const int64_t B = y3.size(0), m = y3.size(1), n = y3.size(2), k = out.u.size(2);
  if (B == 0 || iters == 0) return finish_rpca(std::move(out), batched);
  bool launched = false;
  if (m * n > 0) {
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "dopfast_rpca_dop_solve_cuda", [&] {
      launched = launch_rpca_solve<scalar_t>(
          out.sym, B, m, n, k, y3.const_data_ptr<scalar_t>(),
          out.mask.defined() ? out.mask.const_data_ptr<bool>() : nullptr, out.u.mutable_data_ptr<scalar_t>(),
          out.sym ? nullptr : out.v.mutable_data_ptr<scalar_t>(), out.g.mutable_data_ptr<scalar_t>(),
          out.h.mutable_data_ptr<scalar_t>(), tau, alpha, iters, tol, out.losses.mutable_data_ptr<scalar_t>(),
          out.n_iter.mutable_data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream());
    });
  }
  if (!launched) rpca_fused_loop(y3, out, tau, alpha, iters, tol);
  return finish_rpca(std::move(out), batched);
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CUDA, m) {
  m.impl("rpca_dop_solve", &rpca_dop_solve_entry<rpca_solve_cuda_impl>);
  m.impl("rpca_dop_solve_uv", &rpca_dop_solve_uv_entry<rpca_solve_cuda_impl>);
}

}  // namespace dopfast::cuda
