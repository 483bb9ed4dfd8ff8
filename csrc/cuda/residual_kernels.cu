// CUDA kernels of the residual family. One pass over memory each: 16-byte vector loads/stores when every
// pointer is aligned, a scalar tail, grid-stride loops with 32- or 64-bit indices chosen by size.
#include "cuda/device_utils.cuh"
#include "cuda/launchers.h"
#include "rpca_stopping.h"

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

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
  // An unobserved entry (seen false) gets r = 0 and keeps g, h; x and y are not read into anything there.
  __device__ __forceinline__ double operator()(T x, T& g, T& h, T y, T& r, bool seen) const {
    if (!seen) {
      r = T(0);
      return 0.0;
    }
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
                         const bool* __restrict__ mask, T* __restrict__ r, Index n, T step,
                         double* __restrict__ partial) {
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
    for (int j = 0; j < V; ++j) acc += op(xv.v[j], gv.v[j], hv.v[j], yv.v[j], rv.v[j], !mask || mask[i * V + j]);
    store_pack<T, V>(r, i, rv);
    store_pack<T, V>(g, i, gv);
    store_pack<T, V>(h, i, hv);
  }
  for (Index i = nv * V + tid; i < n; i += stride) acc += op(x[i], g[i], h[i], y[i], r[i], !mask || mask[i]);
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
  if (threadIdx.x == 0) *loss = static_cast<T>(rpca_loss<T>(acc));  // a float32 sum beyond FLT_MAX is inf
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

// Resident blocks per SM for `kernel` at kThreads threads on the current device, from the occupancy API, cached
// per (device, kernel); the device's SM count is cached in device_sm_count.
template <typename Kernel>
int blocks_per_sm(Kernel kernel) {
  static std::mutex lock;
  static std::map<std::pair<int, const void*>, int> cache;
  const std::lock_guard<std::mutex> guard(lock);
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) cudaGetLastError();
  const auto key = std::make_pair(dev, reinterpret_cast<const void*>(kernel));
  const auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  int b = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, kThreads, 0) != cudaSuccess) {
    cudaGetLastError();
    b = 4;
  }
  return cache[key] = b > 0 ? b : 1;
}

// Enough resident blocks to saturate memory bandwidth, never more than the work needs; a grid-stride loop
// covers the rest.
template <typename Kernel>
int elementwise_grid(Kernel kernel, int64_t n, int vec) {
  const int64_t needed = (n / vec + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(device_sm_count()) * blocks_per_sm(kernel);
  return static_cast<int>(std::max<int64_t>(1, std::min(needed, cap)));
}

// The one launch ladder of the elementwise kernels: 16-byte vector accesses when every pointer is aligned, and
// 64-bit indices only when i + stride could overflow int32. `launch(V, Index{})` launches the instantiation;
// `kernel_of(V, Index{})` names it (for the occupancy query).
template <typename T, typename KernelOf, typename Launch>
void launch_elementwise(int64_t n, bool aligned, KernelOf&& kernel_of, Launch&& launch) {
  constexpr int V = pack_width<T>();
  const auto go = [&](auto vec, auto index) {
    const int grid = elementwise_grid(kernel_of(vec, index), n, decltype(vec)::value);
    const bool wide = n + static_cast<int64_t>(grid) * kThreads >= std::numeric_limits<int32_t>::max();
    if (wide && sizeof(index) == 4) return false;  // retry with 64-bit indices
    launch(vec, index, grid);
    return true;
  };
  using Vec = std::integral_constant<int, V>;
  using Scalar = std::integral_constant<int, 1>;
  if (aligned) {
    if (!go(Vec{}, int32_t{})) go(Vec{}, int64_t{});
  } else {
    if (!go(Scalar{}, int32_t{})) go(Scalar{}, int64_t{});
  }
}

}  // namespace

int residual_step_max_grid() { return device_sm_count() * (2048 / kThreads); }

template <typename T>
void launch_residual_step(const T* x, T* g, T* h, const T* y, const bool* mask, T* r, int64_t n, T step,
                          double* partial, T* loss, cudaStream_t stream) {
  int grid = 0;
  if (n > 0) {
    const bool aligned = aligned16(x) && aligned16(g) && aligned16(h) && aligned16(y) && aligned16(r);
    launch_elementwise<T>(
        n, aligned, [](auto vec, auto index) { return residual_step_kernel<T, decltype(vec)::value, decltype(index)>; },
        [&](auto vec, auto index, int blocks) {
          using Index = decltype(index);
          grid = std::min(blocks, residual_step_max_grid());
          residual_step_kernel<T, decltype(vec)::value, Index>
              <<<grid, kThreads, 0, stream>>>(x, g, h, y, mask, r, static_cast<Index>(n), step, partial);
        });
    check_launch("residual_step_kernel");
  }
  finish_loss_kernel<T><<<1, kThreads, 0, stream>>>(partial, grid, loss);
  check_launch("finish_loss_kernel");
}

template <typename T>
void launch_dop_residual(const T* x, const T* g, const T* h, const T* y, T* r, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool aligned = aligned16(x) && aligned16(g) && aligned16(h) && aligned16(y) && aligned16(r);
  launch_elementwise<T>(
      n, aligned, [](auto vec, auto index) { return dop_residual_kernel<T, decltype(vec)::value, decltype(index)>; },
      [&](auto vec, auto index, int grid) {
        using Index = decltype(index);
        dop_residual_kernel<T, decltype(vec)::value, Index>
            <<<grid, kThreads, 0, stream>>>(x, g, h, y, r, static_cast<Index>(n));
      });
  check_launch("dop_residual_kernel");
}

template <typename T>
void launch_dop_residual_backward(const T* grad, const T* g, const T* h, T* grad_g, T* grad_h, int64_t n,
                                  cudaStream_t stream) {
  if (n == 0) return;
  const bool aligned = aligned16(grad) && aligned16(g) && aligned16(h) && aligned16(grad_g) && aligned16(grad_h);
  launch_elementwise<T>(
      n, aligned,
      [](auto vec, auto index) { return dop_residual_backward_kernel<T, decltype(vec)::value, decltype(index)>; },
      [&](auto vec, auto index, int grid) {
        using Index = decltype(index);
        dop_residual_backward_kernel<T, decltype(vec)::value, Index>
            <<<grid, kThreads, 0, stream>>>(grad, g, h, grad_g, grad_h, static_cast<Index>(n));
      });
  check_launch("dop_residual_backward_kernel");
}

#define DOPFAST_INSTANTIATE(T)                                                                                \
  template void launch_residual_step<T>(const T*, T*, T*, const T*, const bool*, T*, int64_t, T, double*, T*, \
                                        cudaStream_t);                                                        \
  template void launch_dop_residual<T>(const T*, const T*, const T*, const T*, T*, int64_t, cudaStream_t);    \
  template void launch_dop_residual_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, cudaStream_t);
DOPFAST_INSTANTIATE(float)
DOPFAST_INSTANTIATE(double)
#undef DOPFAST_INSTANTIATE

}  // namespace dopfast::cuda
