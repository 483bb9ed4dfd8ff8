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
#include <limits>

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
  // k = round(x / ln 2): adding and subtracting 1.5 * 2^mant rounds to nearest (|x / ln 2| < 2^mant).
  const T magic = T(1.5) * static_cast<T>(I(1) << C::mant);
  V kf = (x * C::log2e + magic) - magic;
  const IV k = __builtin_convertvector(kf, IV);
  const V r = x - kf * C::ln2_hi - kf * C::ln2_lo;
  const V p = C::poly(r);
  const IV bits = (k + C::bias) << C::mant;
  V scale;
  std::memcpy(&scale, &bits, sizeof(V));
  V out = p * scale;
  return under ? V{} : out;
}

// Lane mask of the last `rest` lanes (0 < rest < W): the new entries of a tail handled as the row's last whole
// vector.
template <typename T>
inline auto tail_lanes(int64_t rest) {
  using I = typename ExpConst<T>::Int;
  typedef I IV __attribute__((vector_size(sizeof(typename Vec<T>::type))));
  IV lane{};
  for (int w = 0; w < Vec<T>::width; ++w) lane[w] = w;
  return lane >= static_cast<I>(Vec<T>::width - rest);
}

// The sum of a vector's lanes as a tree: the two halves added as vectors, down to one lane (log2 W adds).
template <typename T, int Bytes>
inline T tree_sum(const void* x) {
  if constexpr (Bytes == static_cast<int>(sizeof(T))) {
    T out;
    std::memcpy(&out, x, sizeof(T));
    return out;
  } else {
    typedef T H __attribute__((vector_size(Bytes / 2)));
    H lo, hi;
    std::memcpy(&lo, x, sizeof(H));
    std::memcpy(&hi, static_cast<const char*>(x) + sizeof(H), sizeof(H));
    const H sum = lo + hi;
    return tree_sum<T, Bytes / 2>(&sum);
  }
}

template <typename T>
inline T vsum(typename Vec<T>::type x) {
  return tree_sum<T, static_cast<int>(sizeof(x))>(&x);
}

// out[i] = exp(in[i] - shift) for i < n; returns the sum. A tail shorter than a vector is the last whole vector
// again (recomputing identical values) with the lanes already counted masked out of the sum; rows shorter than
// a vector are padded with -inf (whose exp is 0).
template <typename T>
inline T exp_shift_sum(const T* in, T* out, int64_t n, T shift) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  V acc{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const V e = vexp<T>(load_vec(in + i) - shift);
    store_vec(out + i, e);
    acc += e;
  }
  if (i < n && n >= W) {
    const V e = vexp<T>(load_vec(in + n - W) - shift);
    store_vec(out + n - W, e);
    acc += tail_lanes<T>(n - i) ? e : V{};
  } else if (i < n) {
    T pad[W];
    for (int w = 0; w < W; ++w) pad[w] = w < n ? in[w] : -std::numeric_limits<T>::infinity();
    const V e = vexp<T>(load_vec(pad) - shift);
    store_vec(pad, e);
    for (int w = 0; w < n; ++w) out[w] = pad[w];
    acc += e;
  }
  return vsum<T>(acc);
}
