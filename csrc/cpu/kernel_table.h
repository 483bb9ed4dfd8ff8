// The table of raw-pointer CPU kernels (cpu/kernels/*.h), compiled once per instruction set (kernels_default.cpp,
// kernels_avx2.cpp, kernels_avx512.cpp) and picked at run time (kernel_table.cpp). No torch header: the op wrappers
// unpack tensors.
#pragma once

#include <cstdint>

namespace dopfast::cpu {

// One DOP robust-PCA problem, min 1/4 ||X + g*g - h*h - Y||^2 with X = U U^T (sym, m == n) or X = U V^T.
// All matrices are row-major and contiguous: Y, g, h are m x n; U is m x k; V is n x k (k may be 0: X = 0).
template <typename T>
struct RpcaProblem {
  bool sym = true;
  int64_t m = 0, n = 0, k = 0;
  const T* y = nullptr;
  const bool* mask = nullptr;  // m x n, or null: every entry observed (where false, R = 0 and g, h stay)
  T* u = nullptr;
  T* v = nullptr;
  T* g = nullptr;
  T* h = nullptr;
  double tau = 0, alpha = 0, tol = 0;
  int64_t iters = 0;
  T* losses = nullptr;  // iters entries; entries after the last step taken are set to NaN
};

// One batch of the SOP loss step (see kernels/sop.h). T: logits / gradient type; S: u, v type.
template <typename T, typename S>
struct SopBatch {
  int64_t batch = 0, classes = 0;
  const T* logits = nullptr;  // batch x classes
  const int64_t* targets = nullptr;
  const int64_t* index = nullptr;
  S* u = nullptr;  // N x u_cols (1: official variant, classes: paper variant)
  int64_t u_cols = 1;
  S* v = nullptr;                 // N x classes
  T* grad = nullptr;              // batch x classes: d(mean loss)/d logits
  double* sample_loss = nullptr;  // batch: CE + MSE per sample
  double lr_u = 0, lr_v = 0;
  bool paper = false;
};

template <typename T>
struct KernelTable {
  // r = x + g*g - h*h - y; g -= step*r*g; h += step*r*h. Returns sum(r*r) (pre-update), accumulated in double.
  // mask (may be null): where false, r = 0 and g, h are left as they are.
  double (*residual_step)(const T* x, T* g, T* h, const T* y, const bool* mask, T* r, int64_t n, T step);
  // r = x + g*g - h*h - y
  void (*dop_residual)(const T* x, const T* g, const T* h, const T* y, T* r, int64_t n);
  // grad_g = 2 g grad, grad_h = -2 h grad
  void (*dop_residual_backward)(const T* grad, const T* g, const T* h, T* grad_g, T* grad_h, int64_t n);
  // Runs the whole gradient-descent loop of one problem in place; returns the number of steps taken.
  int64_t (*rpca_solve)(const RpcaProblem<T>& p);
  // Pieces of one step for problems whose products go to the BLAS (see cpu/rpca_solve.cpp):
  // x (m x n, contiguous) := R = x + g*g - h*h - y, updating g, h; symmetrised when `symmetrise`. mask as in
  // RpcaProblem.
  // Returns sum R^2 (pre-symmetrisation); adds sum(dg^2 + dh^2) to step_sq and sum(g^2 + h^2) to theta_sq.
  double (*rpca_residual)(T* x, const T* y, const bool* mask, T* g, T* h, int64_t m, int64_t n, T ga, bool symmetrise,
                          double& step_sq, double& theta_sq);
  // f -= tau * grad over count entries; adds tau^2 grad^2 to step_sq and f^2 (old) to theta_sq.
  void (*factor_update)(T* f, const T* grad, int64_t count, T tau, double& step_sq, double& theta_sq);
  // SOP loss step over samples [i0, i1) of the batch, u/v in float32 or float64.
  void (*sop_step_f32)(const SopBatch<T, float>& p, int64_t i0, int64_t i1);
  void (*sop_step_f64)(const SopBatch<T, double>& p, int64_t i0, int64_t i1);
  const char* isa;
};

const KernelTable<float>& kernels(float);
const KernelTable<double>& kernels(double);

// Name of the instruction set the kernels were picked for ("avx512", "avx2" or "default").
const char* simd_isa();

}  // namespace dopfast::cpu
