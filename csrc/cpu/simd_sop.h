// The fused SOP (sparse over-parameterization) loss, logits gradient and u/v step, one sample at a time.
// Included inside namespace dopfast::cpu::<isa> after simd_math.h. The maths (and the checks against
// PyTorch autograd) are in dopfast/reference.py::sop_loss; in short, with p = softmax(z), true class c,
// a = u^2 (on c), b = v^2 (off c), q = max(p + a - b, 1e-4), S = sum q, h = onehot(argmax z):
//   CE = -log r_c (official: r_c = clamp(q_c / S, 1e-4, 1)),  MSE = sum_k (h_k + a_k - b_k - y_k)^2
//   g_k = kappa m_k (1/S - [k = c] / q_c),  dL/dz = p * (g - <g, p>) / B
//   official: dL/du = [g_c + 2 (h_c + a_c - 1)] 2u [u^2 <= 1] / B,  dL/dv_k = 4 v_k (b_k - h_k) [v_k^2 <= 1] / B
//   paper:    dL/du_c = g_c 2 u_c / B,  dL/dv_k = 4 v_k (b_k - h_k) / B,  then u, v projected on [-1, 1]
// (a, b clamped to [0, 1] in the official variant; v enters CE without gradient; m_k, kappa: clamp masks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

template <typename T, typename S>
void sop_step_impl(const dopfast::cpu::SopBatch<T, S>& P, int64_t i0, int64_t i1) {
  using A = T;  // arithmetic type: float for float32 logits, double for float64
  const int64_t K = P.classes;
  const A inv_b = A(1) / static_cast<A>(P.batch);
  const A eps = A(1e-4);
  for (int64_t i = i0; i < i1; ++i) {
    const T* z = P.logits + i * K;
    T* gz = P.grad + i * K;
    const int64_t c = P.targets[i];
    const int64_t row = P.index[i];
    S* urow = P.u + row * P.u_cols;
    S* vrow = P.v + row * K;

    A zmax = z[0];
    int64_t amax = 0;
    for (int64_t k = 1; k < K; ++k)
      if (z[k] > zmax) {
        zmax = z[k];
        amax = k;
      }
    // e_k = exp(z_k - max) into gz; p_k = e_k / esum
    const A inv_esum = A(1) / static_cast<A>(exp_shift_sum<T>(z, gz, K, zmax));

    const A uc = static_cast<A>(P.paper ? urow[c] : urow[0]);
    const A a_c = P.paper ? uc * uc : std::min(uc * uc, A(1));
    const auto b_of = [&](int64_t k) -> A {
      if (k == c) return A(0);
      const A vk = static_cast<A>(vrow[k]);
      return P.paper ? vk * vk : std::min(vk * vk, A(1));
    };

    A s_sum = 0, q_c = 0;
    for (int64_t k = 0; k < K; ++k) {
      const A w = gz[k] * inv_esum + (k == c ? a_c : A(0)) - b_of(k);
      const A q = w >= eps ? w : eps;
      s_sum += q;
      if (k == c) q_c = q;
    }
    const A ratio = q_c / s_sum;
    A ce;
    A kappa = 1;
    if (P.paper) {
      ce = -std::log(ratio);
    } else {
      const A rc = std::min(std::max(ratio, eps), A(1));
      ce = -std::log(rc);
      kappa = (ratio >= eps && ratio <= A(1)) ? A(1) : A(0);
    }
    const A inv_s = A(1) / s_sum;

    // g_k and <g, p>; store g_k temporarily next to p_k? gz holds e_k; compute dot first, then write grads.
    A dot = 0, g_c = 0, mse = 0;
    for (int64_t k = 0; k < K; ++k) {
      const A p = gz[k] * inv_esum;
      const A ak = k == c ? a_c : A(0), bk = b_of(k);
      const A w = p + ak - bk;
      const A g = (w >= eps ? kappa : A(0)) * (inv_s - (k == c ? A(1) / q_c : A(0)));
      dot += g * p;
      if (k == c) g_c = g;
      const A r = (k == amax ? A(1) : A(0)) + ak - bk - (k == c ? A(1) : A(0));
      mse += r * r;
    }
    for (int64_t k = 0; k < K; ++k) {
      const A p = gz[k] * inv_esum;
      const A ak = k == c ? a_c : A(0), bk = b_of(k);
      const A w = p + ak - bk;
      const A g = (w >= eps ? kappa : A(0)) * (inv_s - (k == c ? A(1) / q_c : A(0)));
      gz[k] = static_cast<T>(p * (g - dot) * inv_b);
    }
    P.sample_loss[i] = static_cast<double>(ce) + static_cast<double>(mse);

    if (P.lr_u == 0 && P.lr_v == 0) continue;
    const A h_c = amax == c ? A(1) : A(0);
    if (P.paper) {
      // Algorithm 1 projects the whole rows on [-1, 1]; only u_c and v_k (k != c) have a gradient.
      const A du = g_c * 2 * uc * inv_b;
      for (int64_t k = 0; k < K; ++k) {
        const A uk = k == c ? uc - static_cast<A>(P.lr_u) * du : static_cast<A>(urow[k]);
        urow[k] = static_cast<S>(std::clamp(uk, A(-1), A(1)));
        const A vk = static_cast<A>(vrow[k]);
        const A dv = k == c ? A(0) : 4 * vk * (vk * vk - (k == amax ? A(1) : A(0))) * inv_b;
        vrow[k] = static_cast<S>(std::clamp(vk - static_cast<A>(P.lr_v) * dv, A(-1), A(1)));
      }
    } else {
      const A du = uc * uc <= A(1) ? (g_c + 2 * (h_c + a_c - 1)) * 2 * uc * inv_b : A(0);
      urow[0] = static_cast<S>(uc - static_cast<A>(P.lr_u) * du);
      for (int64_t k = 0; k < K; ++k) {
        if (k == c) continue;
        const A vk = static_cast<A>(vrow[k]);
        const A dv = vk * vk <= A(1) ? 4 * vk * (vk * vk - (k == amax ? A(1) : A(0))) * inv_b : A(0);
        vrow[k] = static_cast<S>(vk - static_cast<A>(P.lr_v) * dv);
      }
    }
  }
}
