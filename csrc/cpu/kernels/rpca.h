// The whole DOP gradient-descent loop for one robust-PCA problem, on raw pointers (see RpcaProblem).
// Included inside namespace dopfast::cpu::<isa> after kernels/gemm.h.
//
// State is kept transposed and padded: Ut = U^T (k x mp), Vt = V^T (k x np), with mp, np multiples of the
// vector width and zero padding, so both products of a step are "broadcast A, stream rows of B":
//   X  = Ut^T Vt                      (U U^T: only the tiles touching the upper triangle, then mirrored)
//   R  = X + g*g - h*h - Y;  g -= a*tau*R*g;  h += a*tau*R*h       (one fused pass; R overwrites X)
//   U U^T:  Ut' = Ut - tau * Ut Rs,  Rs = (R + R^T)/2              (symmetrised in place)
//   U V^T:  Ut' = Ut - tau * Vt R^T,  Vt' = Vt - tau * Ut R         (both from the old factors)
// The new factors go to a second buffer, so the update is the epilogue of its product (no extra pass).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

template <typename T>
struct AlignedBuffer {
  // 64-byte aligned, zero-initialised scratch memory.
  std::vector<T> storage;
  T* data = nullptr;
  explicit AlignedBuffer(int64_t count) : storage(static_cast<size_t>(count) + 64 / sizeof(T), T(0)) {
    auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
    data = storage.data() + ((64 - addr % 64) % 64) / sizeof(T);
  }
};

template <typename T>
struct TransposedFactor {
  // factor (rows x k, row-major) <-> ft (k x ld, zero padded)
  static void load(const T* f, int64_t rows, int64_t k, T* ft, int64_t ld) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t p = 0; p < k; ++p) ft[p * ld + i] = f[i * k + p];
  }
  static void store(const T* ft, int64_t rows, int64_t k, int64_t ld, T* f) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t p = 0; p < k; ++p) f[i * k + p] = ft[p * ld + i];
  }
};

// Residual pass over X (stored with row stride ldx, overwritten by R); returns sum R^2 and sum (dg^2 + dh^2)
// and adds sum (g^2 + h^2) (pre-update) to theta_sq. With a mask (Masked), R = 0 where it is false, so g and h
// keep their values there (whatever y holds: a NaN at a missing entry is never read into R).
template <typename T, bool Masked>
inline double rpca_residual_rows(T* X, int64_t ldx, const T* __restrict y, const bool* __restrict mask, T* __restrict g,
                                 T* __restrict h, int64_t m, int64_t n, T ga, double& dgh_sq, double& theta_sq) {
  // kLanes independent partial sums per quantity, so the loop vectorises without reassociation.
  T l[kLanes] = {}, d[kLanes] = {}, t[kLanes] = {};
  const auto body = [&](T* __restrict xr, const T* __restrict yr, const bool* __restrict mr, T* __restrict gr,
                        T* __restrict hr, int64_t j, int lane) {
    const T gi = gr[j], hi = hr[j];
    const T full = xr[j] + gi * gi - hi * hi - yr[j];
    const T ri = Masked ? (mr[j] ? full : T(0)) : full;
    const T dg = ga * ri * gi, dh = ga * ri * hi;
    xr[j] = ri;
    gr[j] = gi - dg;
    hr[j] = hi + dh;
    l[lane] += ri * ri;
    d[lane] += dg * dg + dh * dh;
    t[lane] += gi * gi + hi * hi;
  };
  double loss = 0, dsq = 0, tsq = 0;
  for (int64_t i = 0; i < m; ++i) {
    T* xr = X + i * ldx;
    const T* yr = y + i * n;
    T* gr = g + i * n;
    T* hr = h + i * n;
    const bool* mr = Masked ? mask + i * n : nullptr;
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
      for (int lane = 0; lane < kLanes; ++lane) body(xr, yr, mr, gr, hr, j + lane, lane);
    for (int lane = 0; j + lane < n; ++lane) body(xr, yr, mr, gr, hr, j + lane, lane);
    // Flush per row in double, so float32 sums stay accurate for any n.
    for (int lane = 0; lane < kLanes; ++lane) {
      loss += l[lane];
      dsq += d[lane];
      tsq += t[lane];
      l[lane] = d[lane] = t[lane] = 0;
    }
  }
  dgh_sq = dsq;
  theta_sq += tsq;
  return loss;
}

// R <- (R + R^T) / 2 in place, over 8 x 8 tiles of the upper triangle and their mirror tiles, so that the
// column-wise half of each pair stays in cache. A row-by-row sweep misses on every R[j][i] once the matrix
// leaves the cache, and tall tiles thrash one cache set when ld is a power of two (32-row tiles at n = 2048:
// 26 ms per step; 8-row tiles: 5 ms). Each pair is computed as before, so the result is unchanged.
template <typename T>
inline void symmetrise_in_place(T* R, int64_t n, int64_t ld) {
  constexpr int64_t kTile = 8;
  for (int64_t i0 = 0; i0 < n; i0 += kTile)
    for (int64_t j0 = i0; j0 < n; j0 += kTile) {
      const int64_t i1 = std::min(n, i0 + kTile), j1 = std::min(n, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = std::max(j0, i + 1); j < j1; ++j) {
          const T s = T(0.5) * (R[i * ld + j] + R[j * ld + i]);
          R[i * ld + j] = s;
          R[j * ld + i] = s;
        }
    }
}

template <typename T>
double rpca_residual_impl(T* x, const T* y, const bool* mask, T* g, T* h, int64_t m, int64_t n, T ga, bool symmetrise,
                          double& step_sq, double& theta_sq) {
  double dgh_sq = 0;
  const double loss = mask ? rpca_residual_rows<T, true>(x, n, y, mask, g, h, m, n, ga, dgh_sq, theta_sq)
                           : rpca_residual_rows<T, false>(x, n, y, nullptr, g, h, m, n, ga, dgh_sq, theta_sq);
  step_sq += dgh_sq;
  if (symmetrise) symmetrise_in_place(x, n, n);
  return loss;
}

template <typename T>
void factor_update_impl(T* __restrict f, const T* __restrict grad, int64_t count, T tau, double& step_sq,
                        double& theta_sq) {
  double st[kLanes] = {}, th[kLanes] = {};
  const auto body = [&](int64_t i, int lane) {
    const T d = tau * grad[i], old = f[i];
    f[i] = old - d;
    st[lane] += static_cast<double>(d) * d;
    th[lane] += static_cast<double>(old) * old;
  };
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) body(i + lane, lane);
  for (int lane = 0; i + lane < count; ++lane) body(i + lane, lane);
  for (int lane = 0; lane < kLanes; ++lane) {
    step_sq += st[lane];
    theta_sq += th[lane];
  }
}

// Epilogue: dst = src - tau * acc (src, dst with row stride ld); adds tau^2 * acc^2 to step_sq and src^2 to theta_sq.
template <typename T>
struct UpdateEpilogue {
  const T* src;
  T* dst;
  int64_t ld;
  T tau;
  double step_sq = 0, theta_sq = 0;
  void operator()(int64_t i0, int rows, int64_t j0, int nv, typename Vec<T>::type (&acc)[kMR][kNV]) {
    using V = typename Vec<T>::type;
    constexpr int W = Vec<T>::width;
    V st{}, th{};
    for (int a = 0; a < rows; ++a)
      for (int v = 0; v < nv; ++v) {
        const int64_t off = (i0 + a) * ld + j0 + v * W;
        const V s = load_vec(src + off);
        const V d = acc[a][v] * tau;
        store_vec(dst + off, s - d);
        st += d * d;
        th += s * s;
      }
    for (int w = 0; w < W; ++w) {
      step_sq += st[w];
      theta_sq += th[w];
    }
  }
};

template <typename T>
struct StoreEpilogue {
  T* dst;
  int64_t ld;
  void operator()(int64_t i0, int rows, int64_t j0, int nv, typename Vec<T>::type (&acc)[kMR][kNV]) {
    constexpr int W = Vec<T>::width;
    for (int a = 0; a < rows; ++a)
      for (int v = 0; v < nv; ++v) store_vec(dst + (i0 + a) * ld + j0 + v * W, acc[a][v]);
  }
};

template <typename T>
int64_t rpca_solve_impl(const dopfast::cpu::RpcaProblem<T>& P) {
  constexpr int W = Vec<T>::width;
  const bool sym = P.sym;
  const int64_t m = P.m, n = P.n, k = P.k;
  const int64_t mp = round_up(m, W), np = round_up(n, W);
  const T tau = static_cast<T>(P.tau), ga = static_cast<T>(P.alpha * P.tau);

  AlignedBuffer<T> xr(m * np), ut_a(k * mp), ut_b(k * mp);
  AlignedBuffer<T> vt_a(sym ? 0 : k * np), vt_b(sym ? 0 : k * np), rt(sym ? 0 : n * mp);
  T *ut = ut_a.data, *ut_next = ut_b.data, *vt = vt_a.data, *vt_next = vt_b.data;
  TransposedFactor<T>::load(P.u, m, k, ut, mp);
  if (!sym) TransposedFactor<T>::load(P.v, n, k, vt, np);

  const auto all = [](int64_t, int, int64_t, int) { return true; };
  // Tile rows [i0, i0 + rows) x cols [j0, j0 + cols) touches the upper triangle iff j0 + cols - 1 >= i0.
  const auto upper = [](int64_t i0, int, int64_t j0, int cols) { return j0 + cols - 1 >= i0; };

  double prev_loss = 0;
  int64_t it = 0;
  for (; it < P.iters; ++it) {
    // X = U U^T or U V^T into xr (m x np).
    StoreEpilogue<T> store{xr.data, np};
    if (sym) {
      small_gemm<T>(m, np, k, ut, 1, mp, ut, mp, upper, store);
      // Mirror the lower triangle left out above: row i was computed from column floor(i0 / NR) * NR on.
      for (int64_t i = 0; i < m; ++i) {
        const int64_t i0 = i / kMR * kMR;
        int64_t jstart = i0 / (kNV * W) * (kNV * W);
        const int64_t full_cols = np / (kNV * W) * (kNV * W);
        if (jstart >= full_cols) jstart = full_cols + (i0 - full_cols) / W * W;
        for (int64_t j = 0; j < jstart && j < n; ++j) xr.data[i * np + j] = xr.data[j * np + i];
      }
    } else {
      small_gemm<T>(m, np, k, ut, 1, mp, vt, np, all, store);
    }

    double dgh_sq = 0, theta_sq = 0;
    const double sum_sq =
        P.mask ? rpca_residual_rows<T, true>(xr.data, np, P.y, P.mask, P.g, P.h, m, n, ga, dgh_sq, theta_sq)
               : rpca_residual_rows<T, false>(xr.data, np, P.y, nullptr, P.g, P.h, m, n, ga, dgh_sq, theta_sq);
    const double loss = dopfast::rpca_loss<T>(sum_sq);
    if (P.losses) P.losses[it] = static_cast<T>(loss);
    if (!dopfast::rpca_loss_finite<T>(sum_sq)) {  // g, h took this step; U, V do not
      ++it;
      break;
    }

    double step_sq = dgh_sq;
    if (sym) {
      T* R = xr.data;
      symmetrise_in_place(R, n, np);
      UpdateEpilogue<T> upd{ut, ut_next, mp, tau};
      small_gemm<T>(k, mp, m, ut, mp, 1, R, np, all, upd);
      step_sq += upd.step_sq;
      theta_sq += upd.theta_sq;
    } else {
      const T* R = xr.data;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) rt.data[j * mp + i] = R[i * np + j];
      UpdateEpilogue<T> upd_u{ut, ut_next, mp, tau};
      small_gemm<T>(k, mp, n, vt, np, 1, rt.data, mp, all, upd_u);  // Ut' = Ut - tau Vt R^T
      UpdateEpilogue<T> upd_v{vt, vt_next, np, tau};
      small_gemm<T>(k, np, m, ut, mp, 1, R, np, all, upd_v);  // Vt' = Vt - tau Ut R
      step_sq += upd_u.step_sq + upd_v.step_sq;
      theta_sq += upd_u.theta_sq + upd_v.theta_sq;
      std::swap(vt, vt_next);
    }
    std::swap(ut, ut_next);
    const bool done = it > 0 && P.tol > 0 && dopfast::rpca_converged(prev_loss, loss, step_sq, theta_sq, P.tol);
    prev_loss = loss;
    if (done) {
      ++it;
      break;
    }
  }
  TransposedFactor<T>::store(ut, m, k, mp, P.u);
  if (!sym) TransposedFactor<T>::store(vt, n, k, np, P.v);
  if (P.losses)
    for (int64_t j = it; j < P.iters; ++j) P.losses[j] = std::numeric_limits<T>::quiet_NaN();
  return it;
}
