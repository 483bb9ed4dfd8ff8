// Small device helpers shared by the dopfast CUDA kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace dopfast::cuda {

inline void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("dopfast: CUDA launch of ") + what + " failed: " + cudaGetErrorString(err));
}

// A value computed once per device (`compute(dev)`, thread-safe) and returned for the current device; `fallback`
// where the current device cannot be read. Each call site (its lambda type) has its own cache.
template <typename Value, typename Compute>
Value once_per_device(Value fallback, Compute compute) {
  constexpr int kMaxDevices = 64;
  static std::once_flag once[kMaxDevices];
  static Value values[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    cudaGetLastError();
    return fallback;
  }
  std::call_once(once[dev], [&] { values[dev] = compute(dev); });
  return values[dev];
}

// Streaming multiprocessors of the current device, queried once per device.
inline int device_sm_count() {
  return once_per_device(1, [](int dev) {
    int count = 0;
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) cudaGetLastError();
    return count > 0 ? count : 1;
  });
}

// V elements loaded/stored as one aligned vector access (16 bytes for float4 / double2).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V, typename Index>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p, Index i) {
  return reinterpret_cast<const Pack<T, V>*>(p)[i];
}

template <typename T, int V, typename Index>
__device__ __forceinline__ void store_pack(T* p, Index i, const Pack<T, V>& v) {
  reinterpret_cast<Pack<T, V>*>(p)[i] = v;
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Sum over the block; the result is valid in thread 0. `scratch` holds one double per warp (<= 32).
__device__ __forceinline__ double block_sum(double v, double* scratch) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? scratch[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace dopfast::cuda
