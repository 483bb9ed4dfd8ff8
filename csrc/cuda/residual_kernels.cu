// CUDA kernels of the residual family. One pass over memory each: 16-byte vector loads/stores when every
// pointer is aligned, a scalar tail, grid-stride loops with 32- or 64-bit indices chosen by size.
#include "cuda/device_utils.cuh"
#include "cuda/launchers.h"

#include <algorithm>
#include <limits>

namespace dopfast::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
constexpr int pack_width() {
  return 16 / static_cast<int>(sizeof(T));
}

template <typename T>
struct ResidualStepOp {
  T step;
  __device__ __forceinline__ double operator()(T x, T& g, T& h, T y, T& r) const {
    const T gi = g, hi = h;
    r = x + gi * gi - hi * hi - y;
    g = gi - step * r * gi;
    h = hi + step * r * hi;
    return static_cast<double>(r) * static_cast<double>(r);
  }
};

template <typename T, int V, typename Index>
__global__ void __launch_bounds__(kThreads)
    residual_step_kernel(const T* __restrict__ x, T* __restrict__ g, T* __restrict__ h, const T* __restrict__ y,
                         T* __restrict__ r, Index n, T step, double* __restrict__ partial) {
  __shared__ double scratch[32];
  const ResidualStepOp<T> op{step};
  double acc = 0;
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  const Index tid = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x;
  const Index nv = n / V;
  for (Index i = tid; i < nv; i += stride) {
    const Pack<T, V> xv = load_pack<T, V>(x, i), yv = load_pack<T, V>(y, i);
    Pack<T, V> gv = load_pack<T, V>(g, i), hv = load_pack<T, V>(h, i), rv;
#pragma unroll
    for (int j = 0; j < V; ++j) acc += op(xv.v[j], gv.v[j], hv.v[j], yv.v[j], rv.v[j]);
    store_pack<T, V>(r, i, rv);
    store_pack<T, V>(g, i, gv);
    store_pack<T, V>(h, i, hv);
  }
  for (Index i = nv * V + tid; i < n; i += stride) acc += op(x[i], g[i], h[i], y[i], r[i]);
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Sums the per-block partials in a fixed order (so the loss is the same on every run) and scales by 1/4.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    finish_loss_kernel(const double* __restrict__ partial, int count, T* __restrict__ loss) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *loss = static_cast<T>(0.25 * acc);
}

template <typename T, int V, typename Index>
__global__ void __launch_bounds__(kThreads)
    dop_residual_kernel(const T* __restrict__ x, const T* __restrict__ g, const T* __restrict__ h,
                        const T* __restrict__ y, T* __restrict__ r, Index n) {
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  const Index tid = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x;
  const Index nv = n / V;
  for (Index i = tid; i < nv; i += stride) {
    const Pack<T, V> xv = load_pack<T, V>(x, i), gv = load_pack<T, V>(g, i), hv = load_pack<T, V>(h, i),
                     yv = load_pack<T, V>(y, i);
    Pack<T, V> rv;
#pragma unroll
    for (int j = 0; j < V; ++j) rv.v[j] = xv.v[j] + gv.v[j] * gv.v[j] - hv.v[j] * hv.v[j] - yv.v[j];
    store_pack<T, V>(r, i, rv);
  }
  for (Index i = nv * V + tid; i < n; i += stride) r[i] = x[i] + g[i] * g[i] - h[i] * h[i] - y[i];
}

template <typename T, int V, typename Index>
__global__ void __launch_bounds__(kThreads)
    dop_residual_backward_kernel(const T* __restrict__ grad, const T* __restrict__ g, const T* __restrict__ h,
                                 T* __restrict__ grad_g, T* __restrict__ grad_h, Index n) {
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  const Index tid = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x;
  const Index nv = n / V;
  for (Index i = tid; i < nv; i += stride) {
    const Pack<T, V> dv = load_pack<T, V>(grad, i), gv = load_pack<T, V>(g, i), hv = load_pack<T, V>(h, i);
    Pack<T, V> ggv, ghv;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const T two = dv.v[j] + dv.v[j];
      ggv.v[j] = two * gv.v[j];
      ghv.v[j] = -two * hv.v[j];
    }
    store_pack<T, V>(grad_g, i, ggv);
    store_pack<T, V>(grad_h, i, ghv);
  }
  for (Index i = nv * V + tid; i < n; i += stride) {
    const T two = grad[i] + grad[i];
    grad_g[i] = two * g[i];
    grad_h[i] = -two * h[i];
  }
}

int elementwise_grid(int64_t n, int vec) {
  // Enough resident blocks to saturate memory bandwidth; a grid-stride loop covers the rest.
  const int64_t needed = (n / vec + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(device_sm_count()) * 8;
  return static_cast<int>(std::max<int64_t>(1, std::min(needed, cap)));
}

// 64-bit indices only when i + stride could overflow int32.
bool needs_int64(int64_t n, int grid) {
  return n + static_cast<int64_t>(grid) * kThreads >= std::numeric_limits<int32_t>::max();
}

}  // namespace

int residual_step_grid(int64_t n) { return elementwise_grid(n, 1); }

template <typename T>
void launch_residual_step(const T* x, T* g, T* h, const T* y, T* r, int64_t n, T step, double* partial, int grid,
                          T* loss, cudaStream_t stream) {
  constexpr int V = pack_width<T>();
  const bool vec = aligned16(x) && aligned16(g) && aligned16(h) && aligned16(y) && aligned16(r);
  if (n > 0) {
    if (vec && !needs_int64(n, grid))
      residual_step_kernel<T, V, int32_t>
          <<<grid, kThreads, 0, stream>>>(x, g, h, y, r, static_cast<int32_t>(n), step, partial);
    else if (vec)
      residual_step_kernel<T, V, int64_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, n, step, partial);
    else if (!needs_int64(n, grid))
      residual_step_kernel<T, 1, int32_t>
          <<<grid, kThreads, 0, stream>>>(x, g, h, y, r, static_cast<int32_t>(n), step, partial);
    else
      residual_step_kernel<T, 1, int64_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, n, step, partial);
    check_launch("residual_step_kernel");
  }
  finish_loss_kernel<T><<<1, kThreads, 0, stream>>>(partial, n > 0 ? grid : 0, loss);
  check_launch("finish_loss_kernel");
}

template <typename T>
void launch_dop_residual(const T* x, const T* g, const T* h, const T* y, T* r, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int V = pack_width<T>();
  const bool vec = aligned16(x) && aligned16(g) && aligned16(h) && aligned16(y) && aligned16(r);
  const int grid = elementwise_grid(n, vec ? V : 1);
  if (vec && !needs_int64(n, grid))
    dop_residual_kernel<T, V, int32_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, static_cast<int32_t>(n));
  else if (vec)
    dop_residual_kernel<T, V, int64_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, n);
  else if (!needs_int64(n, grid))
    dop_residual_kernel<T, 1, int32_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, static_cast<int32_t>(n));
  else
    dop_residual_kernel<T, 1, int64_t><<<grid, kThreads, 0, stream>>>(x, g, h, y, r, n);
  check_launch("dop_residual_kernel");
}

template <typename T>
void launch_dop_residual_backward(const T* grad, const T* g, const T* h, T* grad_g, T* grad_h, int64_t n,
                                  cudaStream_t stream) {
  if (n == 0) return;
  constexpr int V = pack_width<T>();
  const bool vec = aligned16(grad) && aligned16(g) && aligned16(h) && aligned16(grad_g) && aligned16(grad_h);
  const int grid = elementwise_grid(n, vec ? V : 1);
  if (vec && !needs_int64(n, grid))
    dop_residual_backward_kernel<T, V, int32_t>
        <<<grid, kThreads, 0, stream>>>(grad, g, h, grad_g, grad_h, static_cast<int32_t>(n));
  else if (vec)
    dop_residual_backward_kernel<T, V, int64_t><<<grid, kThreads, 0, stream>>>(grad, g, h, grad_g, grad_h, n);
  else if (!needs_int64(n, grid))
    dop_residual_backward_kernel<T, 1, int32_t>
        <<<grid, kThreads, 0, stream>>>(grad, g, h, grad_g, grad_h, static_cast<int32_t>(n));
  else
    dop_residual_backward_kernel<T, 1, int64_t><<<grid, kThreads, 0, stream>>>(grad, g, h, grad_g, grad_h, n);
  check_launch("dop_residual_backward_kernel");
}

#define DOPFAST_INSTANTIATE(T)                                                                                       \
  template void launch_residual_step<T>(const T*, T*, T*, const T*, T*, int64_t, T, double*, int, T*, cudaStream_t); \
  template void launch_dop_residual<T>(const T*, const T*, const T*, const T*, T*, int64_t, cudaStream_t);           \
  template void launch_dop_residual_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, cudaStream_t);
DOPFAST_INSTANTIATE(float)
DOPFAST_INSTANTIATE(double)
#undef DOPFAST_INSTANTIATE

}  // namespace dopfast::cuda
