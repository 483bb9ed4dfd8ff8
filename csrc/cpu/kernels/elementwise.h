// Elementwise DOP kernels on raw pointers. Included inside namespace dopfast::cpu::<isa> by kernels_default.cpp
// and kernels_avx2.cpp, so the same source is compiled once per instruction set.
//
// The loops run over blocks of kLanes independent lanes with fixed trip counts, which GCC turns into packed
// vector code (and FMA under -mfma); the sum of squares keeps kLanes double accumulators so that float32 input
// is summed in double and the order of additions does not depend on the thread count.
#pragma once

#include <cstdint>

constexpr int kLanes = 16;

// With a mask, an unobserved entry (mask false) gets r = 0 and keeps its g, h, whatever x and y hold there
// (selects, not products with 0, so NaN or Inf in an unobserved y does not leak).
template <typename T, bool kMasked>
double residual_step_body(const T* __restrict x, T* __restrict g, T* __restrict h, const T* __restrict y,
                          const bool* __restrict mask, T* __restrict r, int64_t n, T step) {
  double acc[kLanes] = {};
  const auto body = [&](int64_t i, int lane) {
    const T gi = g[i], hi = h[i];
    const T ri = x[i] + gi * gi - hi * hi - y[i];
    const T gn = gi - step * ri * gi, hn = hi + step * ri * hi;
    if constexpr (kMasked) {
      const bool seen = mask[i];
      r[i] = seen ? ri : T(0);
      g[i] = seen ? gn : gi;
      h[i] = seen ? hn : hi;
      acc[lane] += seen ? static_cast<double>(ri) * static_cast<double>(ri) : 0.0;
    } else {
      r[i] = ri;
      g[i] = gn;
      h[i] = hn;
      acc[lane] += static_cast<double>(ri) * static_cast<double>(ri);
    }
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) body(i + j, j);
  for (int j = 0; i + j < n; ++j) body(i + j, j);
  double total = 0;
  for (int j = 0; j < kLanes; ++j) total += acc[j];
  return total;
}

template <typename T>
double residual_step_impl(const T* x, T* g, T* h, const T* y, const bool* mask, T* r, int64_t n, T step) {
  return mask ? residual_step_body<T, true>(x, g, h, y, mask, r, n, step)
              : residual_step_body<T, false>(x, g, h, y, nullptr, r, n, step);
}

template <typename T>
void dop_residual_impl(const T* __restrict x, const T* __restrict g, const T* __restrict h, const T* __restrict y,
                       T* __restrict r, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) r[i] = x[i] + g[i] * g[i] - h[i] * h[i] - y[i];
}

template <typename T>
void dop_residual_backward_impl(const T* __restrict grad, const T* __restrict g, const T* __restrict h,
                                T* __restrict grad_g, T* __restrict grad_h, int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const T two_grad = grad[i] + grad[i];
    grad_g[i] = two_grad * g[i];
    grad_h[i] = -two_grad * h[i];
  }
}
