// exp over a contiguous array in packed vector code (GCC vector extensions), for the softmax of the SOP
// kernel. Included inside namespace dopfast::cpu::<isa> after kernels/gemm.h (for Vec<T>).
//
// exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 (ln 2 split in two for accuracy), exp(r) from a
// polynomial on |r| <= ln2/2: degree 6 for float (Cephes expf, about 1 ulp), degree 11 for double (Taylor,
// relative error below 2e-16). Inputs here are <= 0 (x - max), so only underflow needs care: below the
// smallest normal result the value is flushed to 0, which the softmax tolerates.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

template <typename T>
struct ExpConst;

template <>
struct ExpConst<float> {
  using Int = int32_t;
  static constexpr float lo = -87.3365447505531f, hi = 88.7228391116729f;
  static constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr int mant = 23, bias = 127;
  template <typename V>
  static V poly(V r) {
    V p = V{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
  }
};

template <>
struct ExpConst<double> {
  using Int = int64_t;
  static constexpr double lo = -708.3964185322641, hi = 709.782712893384;
  static constexpr double log2e = 1.4426950408889634, ln2_hi = 6.93145751953125e-1, ln2_lo = 1.42860682030941723212e-6;
  static constexpr int mant = 52, bias = 1023;
  template <typename V>
  static V poly(V r) {
    // Taylor series to r^11 / 11!: |r| <= 0.347 gives a remainder below 1.2e-17.
    V p = V{} + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return p * r * r + r + 1.0;
  }
};

template <typename T>
inline typename Vec<T>::type vexp(typename Vec<T>::type x) {
  using C = ExpConst<T>;
  using V = typename Vec<T>::type;
  using I = typename C::Int;
  typedef I IV __attribute__((vector_size(sizeof(V))));
  const V lo = V{} + C::lo, hi = V{} + C::hi;
  const IV under = x < lo;  // all-ones lanes where the result underflows
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // round to nearest via the add-magic-number trick is type-punned; a cast after adding 0.5 * sign works too
  V kf = x * C::log2e;
  kf = kf + (kf >= 0 ? V{} + T(0.5) : V{} - T(0.5));
  const IV k = __builtin_convertvector(kf, IV);
  kf = __builtin_convertvector(k, V);
  const V r = x - kf * C::ln2_hi - kf * C::ln2_lo;
  const V p = C::poly(r);
  const IV bits = (k + C::bias) << C::mant;
  V scale;
  std::memcpy(&scale, &bits, sizeof(V));
  V out = p * scale;
  return under ? V{} : out;
}

// out[i] = exp(in[i] - shift) for i < n; returns the sum (in double).
template <typename T>
inline double exp_shift_sum(const T* in, T* out, int64_t n, T shift) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  V acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const V e = vexp<T>(load_vec(in + i) - shift);
    store_vec(out + i, e);
    acc += e;
  }
  double total = 0;
  for (int w = 0; w < W; ++w) total += acc[w];
  for (; i < n; ++i) {
    out[i] = std::exp(in[i] - shift);
    total += out[i];
  }
  return total;
}
