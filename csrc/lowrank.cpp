// lowrank_step_ and lowrank_step_uv_: the factor updates of U U^T / U V^T gradient descent. They are GEMM-bound,
// so they call ATen's matmul (MKL/OpenBLAS on the CPU, cuBLAS on the GPU) and only fuse the scaled update;
// the same device-generic code is registered for CPU and CUDA.
#include "checks.h"

#include <ATen/ops/matmul.h>
#include <torch/library.h>

namespace dopfast {
namespace {

void check_factor(const at::Tensor& u, std::string_view op, std::string_view name) {
  check_float_tensor(u, op, name);
  TORCH_CHECK(u.dim() == 2 || u.dim() == 3, "dopfast.", op, ": ", name,
              " must be a matrix (n, k) or a batch of matrices (B, n, k), got shape ", u.sizes());
  check_no_internal_overlap(u, op, name);
}

void check_r(const at::Tensor& u, const at::Tensor& r, int64_t rows, int64_t cols, std::string_view op) {
  check_like(u, "u", r, op, "r", /*same_shape=*/false);
  const bool batched = u.dim() == 3;
  const bool ok =
      r.dim() == u.dim() && r.size(-2) == rows && r.size(-1) == cols && (!batched || r.size(0) == u.size(0));
  TORCH_CHECK(ok, "dopfast.", op, ": r must have shape ", batched ? "(B, " : "(", rows, ", ", cols, ") to match u ",
              u.sizes(), ", got ", r.sizes());
}

void lowrank_step_(at::Tensor& u, const at::Tensor& r, double step) {
  constexpr std::string_view op = "lowrank_step_";
  check_factor(u, op, "u");
  check_r(u, r, u.size(-2), u.size(-2), op);
  check_finite_scalar(step, op, "step");
  check_no_overlap(u, "u", r, "r", op);
  if (u.numel() == 0) return;
  u.sub_(at::matmul(r, u), step);
  mark_written(u);
}

void lowrank_step_uv_(at::Tensor& u, at::Tensor& v, const at::Tensor& r, double step) {
  constexpr std::string_view op = "lowrank_step_uv_";
  check_factor(u, op, "u");
  check_factor(v, op, "v");
  check_like(u, "u", v, op, "v", /*same_shape=*/false);
  TORCH_CHECK(v.dim() == u.dim() && v.size(-1) == u.size(-1) && (u.dim() == 2 || v.size(0) == u.size(0)), "dopfast.",
              op, ": v must have shape ", u.dim() == 3 ? "(B, n, k)" : "(n, k)", " with the batch and k of u ",
              u.sizes(), ", got ", v.sizes());
  check_r(u, r, u.size(-2), v.size(-2), op);
  check_finite_scalar(step, op, "step");
  check_no_overlap(u, "u", v, "v", op);
  check_no_overlap(u, "u", r, "r", op);
  check_no_overlap(v, "v", r, "r", op);
  if (u.numel() == 0 && v.numel() == 0) return;
  // Both products use the old factors.
  at::Tensor du = at::matmul(r, v);
  at::Tensor dv = at::matmul(r.mT(), u);
  u.sub_(du, step);
  v.sub_(dv, step);
  mark_written(u);
  mark_written(v);
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CPU, m) {
  m.impl("lowrank_step_", &lowrank_step_);
  m.impl("lowrank_step_uv_", &lowrank_step_uv_);
}
#ifdef DOPFAST_WITH_CUDA
TORCH_LIBRARY_IMPL(dopfast, CUDA, m) {
  m.impl("lowrank_step_", &lowrank_step_);
  m.impl("lowrank_step_uv_", &lowrank_step_uv_);
}
#endif

}  // namespace dopfast
