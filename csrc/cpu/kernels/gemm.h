// A register-blocked small-matrix product for the whole-loop solvers (n of a few hundred at most, everything
// in L1/L2). Included inside namespace dopfast::cpu::<isa>, like kernels/elementwise.h.
//
//   C[i, j] (+)= sum_p A(i, p) * B[p, j]      A(i, p) = A[i * a_rs + p * a_cs]  (any strides: broadcast loads)
//                                             B rows contiguous, width a multiple of the vector width
//
// A tile of kMR rows x (NV vectors) columns is kept in registers (6 x 2 vectors: 12 accumulators, which with the
// two B vectors and one broadcast fills the 16 vector registers of SSE2/AVX2); tails use smaller tiles, so
// nothing is read or written outside the matrices. The caller pads B and C to a whole number of vectors.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kVecBytes)));
  static constexpr int width = kVecBytes / static_cast<int>(sizeof(T));
};

template <typename T>
inline typename Vec<T>::type load_vec(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store_vec(T* p, typename Vec<T>::type v) {
  std::memcpy(p, &v, sizeof(v));
}

constexpr int kMR = 6;
constexpr int kNV = 2;

template <typename T, int MR, int NV>
inline void gemm_tile(int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t ldb,
                      typename Vec<T>::type (&acc)[kMR][kNV]) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  for (int a = 0; a < MR; ++a)
    for (int v = 0; v < NV; ++v) acc[a][v] = V{};
  for (int64_t p = 0; p < K; ++p) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load_vec(B + p * ldb + v * W);
    const T* ap = A + p * a_cs;
    for (int a = 0; a < MR; ++a) {
      const V av = V{} + ap[a * a_rs];
      for (int v = 0; v < NV; ++v) acc[a][v] += av * b[v];
    }
  }
}

// Calls tile(i0, rows, j0, nvec, acc) for every tile of the M x Np product whose columns are accepted by
// want(i0, rows, j0, cols). Np must be a multiple of the vector width.
template <typename T, int NV, typename Want, typename Epilogue>
inline void gemm_cols(int64_t M, int64_t j0, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t ldb,
                      Want& want, Epilogue& epilogue) {
  typename Vec<T>::type acc[kMR][kNV];
  constexpr int W = Vec<T>::width;
  int64_t i0 = 0;
  for (; i0 + kMR <= M; i0 += kMR) {
    if (!want(i0, kMR, j0, NV * W)) continue;
    gemm_tile<T, kMR, NV>(K, A + i0 * a_rs, a_rs, a_cs, B + j0, ldb, acc);
    epilogue(i0, kMR, j0, NV, acc);
  }
  const int rows = static_cast<int>(M - i0);
  if (rows == 0 || !want(i0, rows, j0, NV * W)) return;
  const T* Ai = A + i0 * a_rs;
  switch (rows) {
    case 1: gemm_tile<T, 1, NV>(K, Ai, a_rs, a_cs, B + j0, ldb, acc); break;
    case 2: gemm_tile<T, 2, NV>(K, Ai, a_rs, a_cs, B + j0, ldb, acc); break;
    case 3: gemm_tile<T, 3, NV>(K, Ai, a_rs, a_cs, B + j0, ldb, acc); break;
    case 4: gemm_tile<T, 4, NV>(K, Ai, a_rs, a_cs, B + j0, ldb, acc); break;
    default: gemm_tile<T, 5, NV>(K, Ai, a_rs, a_cs, B + j0, ldb, acc); break;
  }
  epilogue(i0, rows, j0, NV, acc);
}

template <typename T, typename Want, typename Epilogue>
inline void small_gemm(int64_t M, int64_t Np, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B,
                       int64_t ldb, Want& want, Epilogue& epilogue) {
  constexpr int W = Vec<T>::width;
  int64_t j0 = 0;
  for (; j0 + kNV * W <= Np; j0 += kNV * W) gemm_cols<T, kNV>(M, j0, K, A, a_rs, a_cs, B, ldb, want, epilogue);
  for (; j0 < Np; j0 += W) gemm_cols<T, 1>(M, j0, K, A, a_rs, a_cs, B, ldb, want, epilogue);
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
