// Raw-pointer CUDA launchers. Their .cu files include only <cuda_runtime.h> (fast to compile); the tensor
// wrappers in cuda/*.cpp check arguments, allocate, and call these on the current stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dopfast::cuda {

// The largest grid launch_residual_step uses on the current device; the caller allocates that many doubles
// for `partial`.
int residual_step_max_grid();

// r = x + g*g - h*h - y; g -= step*r*g; h += step*r*h; *loss = 1/4 sum r^2 (two-pass, deterministic).
// mask (may be null, any alignment): where false, r = 0 and g, h are left as they are.
template <typename T>
void launch_residual_step(const T* x, T* g, T* h, const T* y, const bool* mask, T* r, int64_t n, T step,
                          double* partial, T* loss, cudaStream_t stream);

template <typename T>
void launch_dop_residual(const T* x, const T* g, const T* h, const T* y, T* r, int64_t n, cudaStream_t stream);

template <typename T>
void launch_dop_residual_backward(const T* grad, const T* g, const T* h, T* grad_g, T* grad_h, int64_t n,
                                  cudaStream_t stream);

// Whole-loop DOP solver, one thread block per problem of the batch (see rpca_solve_kernels.cu); sym selects
// U U^T (v unused) or U V^T. mask (batch x m x n, or null): where false, R = 0 and g, h stay. Returns false (and
// launches nothing) when a problem does not fit in shared memory.
template <typename T>
bool launch_rpca_solve(bool sym, int64_t batch, int64_t m, int64_t n, int64_t k, const T* y, const bool* mask, T* u,
                       T* v, T* g, T* h, double tau, double alpha, int64_t iters, double tol, T* losses,
                       int64_t* n_iter, cudaStream_t stream);

enum class SopDtype { f32, f64, f16, bf16 };

// SOP loss step (see sop_kernels.cu): grad (logits' dtype), per-sample losses, the mean loss (float32, or
// float64 for float64 logits), and u, v (float32 or float64) updated in place.
void launch_sop_step(SopDtype logits_dtype, bool state_double, const void* logits, const int64_t* targets,
                     const int64_t* index, void* u, int64_t u_cols, void* v, void* grad, double* sample_loss,
                     void* loss, int64_t B, int64_t K, double lr_u, double lr_v, bool paper, cudaStream_t stream);

}  // namespace dopfast::cuda
