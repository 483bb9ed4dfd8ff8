// Every dopfast op schema, in one place, and the Python module _C (build facts for dopfast.build_info()).
// Kernels are registered per backend in cpu/ and cuda/; fake kernels and autograd live in dopfast/ops.py.
#include "cpu/kernel_table.h"

#include <pybind11/pybind11.h>
#include <torch/library.h>

TORCH_LIBRARY(dopfast, m) {
  // r = x + g*g - h*h - y; then g -= step*r*g, h += step*r*h (pre-update r); loss = 1/4 ||r||^2. With a bool
  // mask (true = observed), r = 0 where the mask is false and g, h are left there.
  m.def(
      "residual_step_(Tensor x, Tensor(a!) g, Tensor(b!) h, Tensor y, float step, Tensor? mask=None) "
      "-> (Tensor r, Tensor loss)");
  // The same step writing r into a caller-owned buffer (no allocation in a loop).
  m.def(
      "residual_step_out_(Tensor x, Tensor(a!) g, Tensor(b!) h, Tensor y, float step, Tensor(c!) r, "
      "Tensor? mask=None) -> Tensor");
  // Differentiable residual r = x + g*g - h*h - y; its backward is dop_residual_backward.
  m.def("dop_residual(Tensor x, Tensor g, Tensor h, Tensor y) -> Tensor");
  m.def("dop_residual_backward(Tensor grad, Tensor g, Tensor h) -> (Tensor grad_g, Tensor grad_h)");
  // u -= step * r @ u (r symmetric); u -= step * r @ v, v -= step * r^T @ u_old.
  m.def("lowrank_step_(Tensor(a!) u, Tensor r, float step) -> ()");
  m.def("lowrank_step_uv_(Tensor(a!) u, Tensor(b!) v, Tensor r, float step) -> ()");
  // Whole DOP loops for min 1/4 ||X + g*g - h*h - y||^2, X = U U^T or U V^T; y (m, n) or a batch (B, m, n).
  m.def(
      "rpca_dop_solve(Tensor y, Tensor u0, Tensor g0, Tensor h0, float tau, float alpha, int iters, float tol, "
      "Tensor? mask=None) -> (Tensor u, Tensor g, Tensor h, Tensor losses, Tensor n_iter)");
  m.def(
      "rpca_dop_solve_uv(Tensor y, Tensor u0, Tensor v0, Tensor g0, Tensor h0, float tau, float alpha, int iters, "
      "float tol, Tensor? mask=None) -> (Tensor u, Tensor v, Tensor g, Tensor h, Tensor losses, Tensor n_iter)");
  // SOP (noisy labels): loss of the batch, d(loss)/d(logits), and u[index], v[index] -= lr * d(loss)/d(u, v).
  m.def(
      "sop_loss_step_(Tensor logits, Tensor targets, Tensor index, Tensor(a!) u, Tensor(b!) v, float lr_u, "
      "float lr_v, bool paper) -> (Tensor loss, Tensor grad_logits)");
}

PYBIND11_MODULE(_C, module) {
  module.doc() = "dopfast compiled ops (registered as torch.ops.dopfast.*)";
  module.def("has_cuda_kernels", [] {
#ifdef DOPFAST_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  module.def("cpu_isa", [] { return std::string(dopfast::cpu::simd_isa()); });
}
