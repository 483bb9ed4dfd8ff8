// The fused SOP (sparse over-parameterization) loss, logits gradient and u/v step, one sample at a time.
// Included inside namespace dopfast::cpu::<isa> after kernels/math.h. The maths (and the checks against
// PyTorch autograd) are in dopfast/reference.py::sop_loss_terms; in short, with p = softmax(z), true class c,
// a = u^2 (on c), b = v^2 (off c), q = max(p + a - b, 1e-4), S = sum q, h = onehot(argmax z):
//   CE = -log r_c (official: r_c = clamp(q_c / S, 1e-4, 1)),  MSE = sum_k (h_k + a_k - b_k - y_k)^2
//   g_k = kappa m_k (1/S - [k = c] / q_c),  dL/dz = p * (g - <g, p>) / B
//   official: dL/du = [g_c + 2 (h_c + a_c - 1)] 2u [u^2 <= 1] / B,  dL/dv_k = 4 v_k (b_k - h_k) [v_k^2 <= 1] / B
//   paper:    dL/du_c = g_c 2 u_c / B,  dL/dv_k = 4 v_k (b_k - h_k) / B,  then u, v projected on [-1, 1]
// (a, b clamped to [0, 1] in the official variant; v enters CE without gradient; m_k, kappa: clamp masks).
//
// Every pass over the K classes is branch-free packed vector code that treats all classes as "off the
// label, not the argmax"; the two special classes (c and argmax) are then corrected with scalar code.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

template <typename T>
struct SopRow {
  // Per-thread scratch: v of the row and b = v^2 (clamped for the official variant), in T.
  std::vector<T> v, b;
  explicit SopRow(int64_t k) : v(static_cast<size_t>(k)), b(static_cast<size_t>(k)) {}
};

template <typename T>
inline T vsum(typename Vec<T>::type x) {
  T s = 0;
  for (int w = 0; w < Vec<T>::width; ++w) s += x[w];
  return s;
}

template <typename T, typename S>
void sop_step_impl(const dopfast::cpu::SopBatch<T, S>& P, int64_t i0, int64_t i1) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  const int64_t K = P.classes, KV = K / W * W;
  const T inv_b = T(1) / static_cast<T>(P.batch), eps = T(1e-4);
  const bool step = P.lr_u != 0 || P.lr_v != 0;
  SopRow<T> row(K);
  T* vt = row.v.data();
  T* bv = row.b.data();
  for (int64_t i = i0; i < i1; ++i) {
    const T* z = P.logits + i * K;
    T* gz = P.grad + i * K;
    const int64_t c = P.targets[i];
    S* urow = P.u + P.index[i] * P.u_cols;
    S* vrow = P.v + P.index[i] * K;

    T zmax = z[0];
    if (KV > 0) {
      V m = load_vec(z);
      for (int64_t k = W; k < KV; k += W) {
        const V x = load_vec(z + k);
        m = x > m ? x : m;
      }
      for (int w = 0; w < W; ++w) zmax = m[w] > zmax ? m[w] : zmax;
    }
    for (int64_t k = KV; k < K; ++k) zmax = z[k] > zmax ? z[k] : zmax;
    int64_t amax = 0;
    while (amax < K && z[amax] != zmax) ++amax;                                  // first maximum, as torch.argmax
    if (amax == K) amax = 0;                                                     // NaN logits: the loss is NaN anyway
    const T inv_esum = T(1) / static_cast<T>(exp_shift_sum<T>(z, gz, K, zmax));  // gz <- exp(z - max)

#pragma GCC ivdep
    for (int64_t k = 0; k < K; ++k) {
      const T v = static_cast<T>(vrow[k]);
      const T v2 = v * v;
      vt[k] = v;
      bv[k] = P.paper || v2 < T(1) ? v2 : T(1);
    }
    bv[c] = 0;  // b = v^2 (1 - y)
    const T uc = static_cast<T>(P.paper ? urow[c] : urow[0]);
    const T a_c = P.paper ? uc * uc : std::min(uc * uc, T(1));

    // S = sum_k max(p_k + a_k - b_k, eps)
    V acc{};
    for (int64_t k = 0; k < KV; k += W) {
      const V w = load_vec(gz + k) * inv_esum - load_vec(bv + k);
      acc += w >= eps ? w : V{} + eps;
    }
    T s_sum = vsum<T>(acc);
    for (int64_t k = KV; k < K; ++k) s_sum += std::max(gz[k] * inv_esum - bv[k], eps);
    const T p_c = gz[c] * inv_esum, w_c = p_c + a_c, q_c = std::max(w_c, eps);
    s_sum += q_c - std::max(p_c, eps);  // the label's entry has a_c added (and b_c = 0)
    const T ratio = q_c / s_sum;
    T ce, kappa = 1;
    if (P.paper) {
      ce = -std::log(ratio);
    } else {
      ce = -std::log(std::min(std::max(ratio, eps), T(1)));
      kappa = (ratio >= eps && ratio <= T(1)) ? T(1) : T(0);
    }
    const T gk = kappa / s_sum;  // g_k off the label where the clamp is inactive

    // <g, p> and the MSE, off-label form, then corrected at c and at the argmax.
    V dot_v{}, mse_v{};
    for (int64_t k = 0; k < KV; k += W) {
      const V p = load_vec(gz + k) * inv_esum, b = load_vec(bv + k);
      dot_v += (p - b >= eps ? V{} + gk : V{}) * p;
      mse_v += b * b;
    }
    T dot = vsum<T>(dot_v), mse = vsum<T>(mse_v);
    for (int64_t k = KV; k < K; ++k) {
      const T p = gz[k] * inv_esum;
      dot += (p - bv[k] >= eps ? gk : T(0)) * p;
      mse += bv[k] * bv[k];
    }
    const T g_c = (w_c >= eps ? kappa : T(0)) * (T(1) / s_sum - T(1) / q_c);
    dot += g_c * p_c - (p_c >= eps ? gk : T(0)) * p_c;
    // mse: at c the term is (h_c + a_c - 1)^2 (b_c = 0 was counted as 0); at the argmax (if not c) 1 - 2 b.
    const T h_c = amax == c ? T(1) : T(0);
    mse += (h_c + a_c - 1) * (h_c + a_c - 1);
    if (amax != c) mse += 1 - 2 * bv[amax];

    for (int64_t k = 0; k < KV; k += W) {
      const V p = load_vec(gz + k) * inv_esum, b = load_vec(bv + k);
      store_vec(gz + k, p * ((p - b >= eps ? V{} + gk : V{}) - dot) * inv_b);
    }
    for (int64_t k = KV; k < K; ++k) {
      const T p = gz[k] * inv_esum;
      gz[k] = p * ((p - bv[k] >= eps ? gk : T(0)) - dot) * inv_b;
    }
    gz[c] = p_c * (g_c - dot) * inv_b;
    P.sample_loss[i] = static_cast<double>(ce) + static_cast<double>(mse);
    // No update without a step (evaluation), nor from a row whose loss is not finite (an inf or NaN logit
    // would write NaN into the sample's u, v for good).
    if (!step || !std::isfinite(P.sample_loss[i])) continue;

    // v_k -= lr_v 4 v_k (b_k - h_k) [mask] / B, off-label form (h = 0), then the argmax and the label fixed.
    const T lv = static_cast<T>(P.lr_v) * 4 * inv_b;
    const auto v_new = [&](T v, T b, T h) {
      if (P.paper) return std::clamp(v - lv * v * (b - h), T(-1), T(1));
      return v * v <= T(1) ? v - lv * v * (b - h) : v;
    };
    if (P.paper) {
      for (int64_t k = 0; k < KV; k += W) {
        const V v = load_vec(vt + k), nv = v - lv * v * load_vec(bv + k);
        store_vec(vt + k, nv > T(1) ? V{} + T(1) : (nv < T(-1) ? V{} - T(1) : nv));
      }
    } else {
      for (int64_t k = 0; k < KV; k += W) {
        const V v = load_vec(vt + k);
        store_vec(vt + k, v * v <= T(1) ? v - lv * v * load_vec(bv + k) : v);
      }
    }
    for (int64_t k = KV; k < K; ++k) vt[k] = v_new(vt[k], bv[k], T(0));
    if (amax != c) vt[amax] = v_new(static_cast<T>(vrow[amax]), bv[amax], T(1));
    const T v_c = static_cast<T>(vrow[c]);  // no gradient on the label's entry (only projected)
    vt[c] = P.paper ? std::clamp(v_c, T(-1), T(1)) : v_c;
    for (int64_t k = 0; k < K; ++k) vrow[k] = static_cast<S>(vt[k]);

    if (P.paper) {
      // Algorithm 1 projects the whole u row; only u_c has a gradient.
      for (int64_t k = 0; k < K; ++k) urow[k] = static_cast<S>(std::clamp(static_cast<T>(urow[k]), T(-1), T(1)));
      const T du = g_c * 2 * uc * inv_b;
      urow[c] = static_cast<S>(std::clamp(uc - static_cast<T>(P.lr_u) * du, T(-1), T(1)));
    } else {
      const T du = uc * uc <= T(1) ? (g_c + 2 * (h_c + a_c - 1)) * 2 * uc * inv_b : T(0);
      urow[0] = static_cast<S>(uc - static_cast<T>(P.lr_u) * du);
    }
  }
}
