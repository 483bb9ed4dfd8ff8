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

// The large-problem DOP loop's per-step kernels (rpca_loop_kernels.cu; driven by rpca_fused_loop.cpp). Per
// problem b of a batch, device state: active[b], live[b] (int), loss[b], prev_loss[b], res_step[b],
// res_theta[b] (double), n_iter[b], and one step index *step (int64) that loop_finish advances.
// Blocks per problem for a pass over `count` entries of each of `batch` problems.
int loop_blocks_per_problem(int64_t count, int64_t batch);

// xr holds X = U V^T on entry and R = X + g*g - h*h - y on exit (0 where mask is false); g, h take the step of
// size `step` where the problem is active. partial: batch * blocks * 3 doubles.
template <typename T>
void launch_loop_residual(const T* y, const bool* mask, T* xr, T* g, T* h, int64_t batch, int64_t mn, T step,
                          int blocks, const int* active, double* partial, cudaStream_t stream);

// The step's loss from the residual pass's partials; live[b] = finite; losses[b * iters + *step] recorded.
template <typename T>
void launch_loop_loss(int64_t batch, int blocks, const double* partial, const int* active, int* live, double* loss,
                      double* res_step, double* res_theta, T* losses, int64_t iters, const int64_t* step,
                      cudaStream_t stream);

// f -= scale * (grad + grad2) (grad2 may be null) where live; partial: batch * blocks * 2 doubles.
template <typename T>
void launch_loop_factor(T* f, const T* grad, const T* grad2, int64_t batch, int64_t count, T scale, int blocks,
                        const int* live, double* partial, cudaStream_t stream);

// Counts the step, applies the stopping rule (rpca_stopping.h) and advances *step.
void launch_loop_finish(int64_t batch, int blocks_u, const double* partial_u, int blocks_v, const double* partial_v,
                        int* active, const int* live, double* prev_loss, const double* loss, const double* res_step,
                        const double* res_theta, int64_t* n_iter, int64_t* step, double tol, cudaStream_t stream);

enum class SopDtype { f32, f64, f16, bf16 };

// SOP loss step (see sop_kernels.cu): grad (logits' dtype), per-sample losses, the mean loss (float32, or
// float64 for float64 logits), and u, v (float32 or float64) updated in place.
void launch_sop_step(SopDtype logits_dtype, bool state_double, const void* logits, const int64_t* targets,
                     const int64_t* index, void* u, int64_t u_cols, void* v, void* grad, double* sample_loss,
                     void* loss, int64_t B, int64_t K, double lr_u, double lr_v, bool paper, cudaStream_t stream);

}  // namespace dopfast::cuda
