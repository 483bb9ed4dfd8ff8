// Per-step kernels of the large-problem CUDA DOP loop (rpca_fused_loop.cpp). Around the cuBLAS products a step
// is one fused pass over (B, m, n) (residual, g/h update, the step's sums), one pass over the factors, and two
// tiny per-problem kernels that reduce the per-block sums in a fixed order and apply the stopping rule of
// rpca_stopping.h on the device. Nothing is read back by the host inside a step, and the step index lives on
// the device, so a chunk of steps can be captured in a CUDA graph and replayed.
//
// Per problem b of the batch, on the device: active[b] (still running), live[b] (this step's loss is finite:
// U, V take the step), loss[b] / prev_loss[b], and the residual pass's ||dg||^2 + ||dh||^2 and ||g||^2 + ||h||^2.
// Same contract as the one-block kernel and the CPU: after a non-finite loss g, h keep that step, U, V do not.
#include "cuda/device_utils.cuh"
#include "cuda/launchers.h"
#include "rpca_stopping.h"

#include <algorithm>

namespace dopfast::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocksPerProblem = 1024;
constexpr int64_t kMaxGridY = 65535;  // gridDim.y limit: larger batches launch in slices

// r = X + g*g - h*h - y over problem blockIdx.y's slice of (B, mn), written over X; g, h take the step.
// partial[(b * G + block) * 3 + {0, 1, 2}] = sum r^2, sum dg^2 + dh^2, sum g^2 + h^2 (before the step).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    loop_residual_kernel(const T* __restrict__ y, const bool* __restrict__ mask, T* __restrict__ xr, T* __restrict__ g,
                         T* __restrict__ h, int64_t mn, T step, const int* __restrict__ active,
                         double* __restrict__ partial, int64_t first) {
  __shared__ double scratch[32];
  const int64_t b = first + blockIdx.y;
  double* out = partial + (b * gridDim.x + blockIdx.x) * 3;
  if (!active[b]) {  // uniform over the block: a finished problem is left exactly as it is
    if (threadIdx.x == 0) out[0] = out[1] = out[2] = 0.0;
    return;
  }
  const int64_t base = b * mn;
  double sum = 0, steps = 0, theta = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < mn;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t o = base + i;
    const T gi = g[o], hi = h[o];
    theta += static_cast<double>(gi) * gi + static_cast<double>(hi) * hi;
    // Unobserved: r = 0 and y is not read; g, h take the (zero) step as in every other path, so that an
    // infinite g or h turns NaN there too.
    const T r = (mask && !mask[o]) ? T(0) : xr[o] + gi * gi - hi * hi - y[o];
    const T dg = step * r * gi, dh = step * r * hi;
    xr[o] = r;
    g[o] = gi - dg;
    h[o] = hi + dh;
    sum += static_cast<double>(r) * r;
    steps += static_cast<double>(dg) * dg + static_cast<double>(dh) * dh;
  }
  sum = block_sum(sum, scratch);
  steps = block_sum(steps, scratch);
  theta = block_sum(theta, scratch);
  if (threadIdx.x == 0) {
    out[0] = sum;
    out[1] = steps;
    out[2] = theta;
  }
}

// One thread per problem: the step's loss (in the problem's precision, as rpca_loss<T>), whether it is finite,
// and the loss recorded at the step index.
template <typename T>
__global__ void loop_loss_kernel(int64_t batch, int blocks, const double* __restrict__ partial,
                                 const int* __restrict__ active, int* __restrict__ live, double* __restrict__ loss,
                                 double* __restrict__ res_step, double* __restrict__ res_theta, T* __restrict__ losses,
                                 int64_t iters, const int64_t* __restrict__ step) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  if (!active[b]) {
    live[b] = 0;
    return;
  }
  double sum = 0, steps = 0, theta = 0;
  for (int j = 0; j < blocks; ++j) {  // fixed order: the same loss on every run
    const double* p = partial + (b * blocks + j) * 3;
    sum += p[0];
    steps += p[1];
    theta += p[2];
  }
  loss[b] = rpca_loss<T>(sum);
  live[b] = rpca_loss_finite<T>(sum) ? 1 : 0;
  res_step[b] = steps;
  res_theta[b] = theta;
  const int64_t it = *step;
  if (it < iters) losses[b * iters + it] = static_cast<T>(loss[b]);
}

// f -= scale * (grad + grad2) (grad2 may be null) over problem blockIdx.y's `count` entries, where live.
// partial[(b * G + block) * 2 + {0, 1}] = sum df^2, sum f^2 (before the step).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    loop_factor_kernel(T* __restrict__ f, const T* __restrict__ grad, const T* __restrict__ grad2, int64_t count,
                       T scale, const int* __restrict__ live, double* __restrict__ partial, int64_t first) {
  __shared__ double scratch[32];
  const int64_t b = first + blockIdx.y;
  double* out = partial + (b * gridDim.x + blockIdx.x) * 2;
  if (!live[b]) {
    if (threadIdx.x == 0) out[0] = out[1] = 0.0;
    return;
  }
  const int64_t base = b * count;
  double steps = 0, theta = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t o = base + i;
    const T fi = f[o];
    const T d = scale * (grad2 ? grad[o] + grad2[o] : grad[o]);
    f[o] = fi - d;
    steps += static_cast<double>(d) * d;
    theta += static_cast<double>(fi) * fi;
  }
  steps = block_sum(steps, scratch);
  theta = block_sum(theta, scratch);
  if (threadIdx.x == 0) {
    out[0] = steps;
    out[1] = theta;
  }
}

// One thread per problem: count the step, then the stopping rule (from the second step on, tol > 0).
__global__ void loop_finish_kernel(int64_t batch, int blocks_u, const double* __restrict__ partial_u, int blocks_v,
                                   const double* __restrict__ partial_v, int* __restrict__ active,
                                   const int* __restrict__ live, double* __restrict__ prev_loss,
                                   const double* __restrict__ loss, const double* __restrict__ res_step,
                                   const double* __restrict__ res_theta, int64_t* __restrict__ n_iter,
                                   const int64_t* __restrict__ step, double tol) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch || !active[b]) return;
  n_iter[b] += 1;
  double steps = res_step[b], theta = res_theta[b];
  for (int j = 0; j < blocks_u; ++j) {
    steps += partial_u[(b * blocks_u + j) * 2];
    theta += partial_u[(b * blocks_u + j) * 2 + 1];
  }
  for (int j = 0; j < blocks_v; ++j) {
    steps += partial_v[(b * blocks_v + j) * 2];
    theta += partial_v[(b * blocks_v + j) * 2 + 1];
  }
  const bool is_live = live[b] != 0;
  const bool converged = is_live && tol > 0 && *step > 0 && rpca_converged(prev_loss[b], loss[b], steps, theta, tol);
  active[b] = is_live && !converged ? 1 : 0;
  prev_loss[b] = loss[b];
}

// Runs after loop_finish_kernel (same stream): every problem of this step has read the index.
__global__ void loop_advance_kernel(int64_t* step) { *step += 1; }

}  // namespace

int loop_blocks_per_problem(int64_t count, int64_t batch) {
  const int64_t wanted = (4 * static_cast<int64_t>(device_sm_count()) + batch - 1) / std::max<int64_t>(batch, 1);
  const int64_t useful = (count + kThreads - 1) / kThreads;
  return static_cast<int>(std::clamp<int64_t>(std::min(wanted, useful), 1, kMaxBlocksPerProblem));
}

template <typename T>
void launch_loop_residual(const T* y, const bool* mask, T* xr, T* g, T* h, int64_t batch, int64_t mn, T step,
                          int blocks, const int* active, double* partial, cudaStream_t stream) {
  for (int64_t first = 0; first < batch; first += kMaxGridY) {
    const dim3 grid(blocks, static_cast<unsigned>(std::min(kMaxGridY, batch - first)));
    loop_residual_kernel<T><<<grid, kThreads, 0, stream>>>(y, mask, xr, g, h, mn, step, active, partial, first);
    check_launch("loop_residual_kernel");
  }
}

template <typename T>
void launch_loop_loss(int64_t batch, int blocks, const double* partial, const int* active, int* live, double* loss,
                      double* res_step, double* res_theta, T* losses, int64_t iters, const int64_t* step,
                      cudaStream_t stream) {
  const int per = 128;
  const unsigned grid = static_cast<unsigned>((batch + per - 1) / per);
  loop_loss_kernel<T>
      <<<grid, per, 0, stream>>>(batch, blocks, partial, active, live, loss, res_step, res_theta, losses, iters, step);
  check_launch("loop_loss_kernel");
}

template <typename T>
void launch_loop_factor(T* f, const T* grad, const T* grad2, int64_t batch, int64_t count, T scale, int blocks,
                        const int* live, double* partial, cudaStream_t stream) {
  for (int64_t first = 0; first < batch; first += kMaxGridY) {
    const dim3 grid(blocks, static_cast<unsigned>(std::min(kMaxGridY, batch - first)));
    loop_factor_kernel<T><<<grid, kThreads, 0, stream>>>(f, grad, grad2, count, scale, live, partial, first);
    check_launch("loop_factor_kernel");
  }
}

void launch_loop_finish(int64_t batch, int blocks_u, const double* partial_u, int blocks_v, const double* partial_v,
                        int* active, const int* live, double* prev_loss, const double* loss, const double* res_step,
                        const double* res_theta, int64_t* n_iter, int64_t* step, double tol, cudaStream_t stream) {
  const int per = 128;
  const unsigned grid = static_cast<unsigned>((batch + per - 1) / per);
  loop_finish_kernel<<<grid, per, 0, stream>>>(batch, blocks_u, partial_u, blocks_v, partial_v, active, live, prev_loss,
                                               loss, res_step, res_theta, n_iter, step, tol);
  check_launch("loop_finish_kernel");
  loop_advance_kernel<<<1, 1, 0, stream>>>(step);
  check_launch("loop_advance_kernel");
}

#define DOPFAST_INSTANTIATE_LOOP(T)                                                                               \
  template void launch_loop_residual<T>(const T*, const bool*, T*, T*, T*, int64_t, int64_t, T, int, const int*,  \
                                        double*, cudaStream_t);                                                   \
  template void launch_loop_loss<T>(int64_t, int, const double*, const int*, int*, double*, double*, double*, T*, \
                                    int64_t, const int64_t*, cudaStream_t);                                       \
  template void launch_loop_factor<T>(T*, const T*, const T*, int64_t, int64_t, T, int, const int*, double*,      \
                                      cudaStream_t);
DOPFAST_INSTANTIATE_LOOP(float)
DOPFAST_INSTANTIATE_LOOP(double)
#undef DOPFAST_INSTANTIATE_LOOP

}  // namespace dopfast::cuda
