// The fused SOP (sparse over-parameterization) loss, logits gradient and u/v step, one sample at a time.
// Included inside namespace dopfast::cpu::<isa> after kernels/math.h. The maths (and the checks against
// PyTorch autograd) are in dopfast/reference.py::sop_loss_terms; in short, with p = softmax(z), true class c,
// a = u^2 (on c), b = v^2 (off c), q = max(p + a - b, 1e-4), S = sum q, h = onehot(argmax z):
//   CE = -log r_c (official: r_c = clamp(q_c / S, 1e-4, 1)),  MSE = sum_k (h_k + a_k - b_k - y_k)^2
//   g_k = kappa m_k (1/S - [k = c] / q_c),  dL/dz = p * (g - <g, p>) / B
//   official: dL/du = [g_c + 2 (h_c + a_c - 1)] 2u [0 < u^2 < 1] / B,  dL/dv_k = 4 v_k (b_k - h_k) [0 < v_k^2 < 1] / B
//   paper:    dL/du_c = g_c 2 u_c / B,  dL/dv_k = 4 v_k (b_k - h_k) / B,  then u, v projected on [-1, 1]
// (a, b clamped to [0, 1] in the official variant; v enters CE without gradient; m_k, kappa: clamp masks,
// open intervals as torch.clamp's gradient: nothing passes at a bound). The u, v steps are computed in the
// logits' precision and applied as increments in the state's own (an entry without a step keeps every bit).
//
// Four passes over the K classes of a row: max; exp; S, <g, p> and the MSE together (<g, p> = (kappa / S) *
// sum of p over the unclamped classes, so one pass serves both); the logits gradient with the v update in
// place. Each is branch-free packed vector code that treats every class as "off the label, not the argmax",
// with b read from v itself; the two special classes (c and argmax) are then corrected with scalar code from
// their saved old values. The max pass also prefetches the next sample's rows (random rows of v, a page
// each at K = 1000 floats, where the hardware prefetcher stops).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

// W consecutive S values as a vector of T (converted when the state's precision differs from the logits').
template <typename T, typename S>
inline typename Vec<T>::type load_as(const S* p) {
  if constexpr (std::is_same_v<T, S>) {
    return load_vec(p);
  } else {
    typedef S SV __attribute__((vector_size(Vec<T>::width * sizeof(S))));
    SV s;
    std::memcpy(&s, p, sizeof(s));
    return __builtin_convertvector(s, typename Vec<T>::type);
  }
}

// state[0..W) -= delta, in the state's precision (an entry whose delta is 0 keeps every bit), then projected on
// [-1, 1] in the paper variant.
template <typename T, bool project, typename S>
inline void step_state(S* p, typename Vec<T>::type delta) {
  typedef S SV __attribute__((vector_size(Vec<T>::width * sizeof(S))));
  SV s;
  std::memcpy(&s, p, sizeof(s));
  if constexpr (std::is_same_v<T, S>)
    s -= delta;
  else
    s -= __builtin_convertvector(delta, SV);
  if constexpr (project) s = s > S(1) ? SV{} + S(1) : (s < S(-1) ? SV{} - S(1) : s);
  std::memcpy(p, &s, sizeof(s));
}

// b = v^2 off the label, clamped to 1 in the official variant; V a vector of T or T itself.
template <bool paper, typename T, typename V>
inline V off_label_b(V v2) {
  if constexpr (paper)
    return v2;
  else
    return v2 < T(1) ? v2 : V{} + T(1);
}

template <bool paper, typename T, typename S>
void sop_rows(const dopfast::cpu::SopBatch<T, S>& P, int64_t i0, int64_t i1) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::width;
  constexpr int64_t kLine = 64 / sizeof(T) >= W ? 64 / sizeof(T) : W;  // logits per cache line (a multiple of W)
  const int64_t K = P.classes, KV = K / W * W;
  const int64_t prefetch_distance = K >= 512 ? 1 : 4;
  const T inv_b = T(1) / static_cast<T>(P.batch), eps = T(1e-4), one = T(1);
  const bool step = P.lr_u != 0 || P.lr_v != 0;
  const T lv = static_cast<T>(P.lr_v) * 4 * inv_b;
  // b of one class; the v step of a class off the label (h = 0 unless argmax), applied in the state's
  // precision (and projected on [-1, 1] in the paper variant).
  const auto b_of = [](T v) { return off_label_b<paper, T>(v * v); };
  const auto step_v = [lv, one](S& v_old, T b, T h) {
    const T v = static_cast<T>(v_old), v2 = v * v;
    const T delta = paper || (v2 > T(0) && v2 < one) ? lv * v * (b - h) : T(0);
    const S nv = v_old - static_cast<S>(delta);
    v_old = paper ? std::clamp(nv, S(-1), S(1)) : nv;
  };
  for (int64_t i = i0; i < i1; ++i) {
    const T* z = P.logits + i * K;
    T* gz = P.grad + i * K;
    const int64_t c = P.targets[i];
    S* urow = P.u + P.index[i] * P.u_cols;
    S* vrow = P.v + P.index[i] * K;
    // Rows `ahead` samples on are prefetched: far enough that short rows (K = 100: ~0.1 us of work) still
    // cover a memory latency.
    const int64_t ahead = i + prefetch_distance < i1 ? i + prefetch_distance : i1 - 1;
    const char* znext = reinterpret_cast<const char*>(P.logits + ahead * K);
    const char* vnext = ahead > i ? reinterpret_cast<const char*>(P.v + P.index[ahead] * K) : nullptr;
    if (vnext) __builtin_prefetch(P.u + P.index[ahead] * P.u_cols, 1);

    // max and first argmax (as torch.argmax): per lane, the first index of the lane's maximum.
    T zmax = z[0];
    int64_t amax = 0;
    if (KV > 0) {
      using I = typename ExpConst<T>::Int;
      typedef I IV __attribute__((vector_size(sizeof(V))));
      IV lane{};
      for (int w = 0; w < W; ++w) lane[w] = w;
      V m = load_vec(z);
      IV at = lane;
      for (int64_t k = 0; k < KV; k += W) {
        if (vnext && k % kLine == 0) {  // one line of the next logits row, and the same share of its v row
          __builtin_prefetch(znext + k * sizeof(T));
          __builtin_prefetch(vnext + k * sizeof(S), 1);
          if constexpr (sizeof(S) > sizeof(T)) __builtin_prefetch(vnext + k * sizeof(S) + 64, 1);
        }
        const V x = load_vec(z + k);
        const auto up = x > m;
        m = up ? x : m;
        at = up ? lane + static_cast<I>(k) : at;
      }
      T lanes[W];
      I where[W];
      std::memcpy(lanes, &m, sizeof(lanes));
      std::memcpy(where, &at, sizeof(where));
      for (int w = 0; w < W; ++w) zmax = lanes[w] > zmax ? lanes[w] : zmax;
      amax = KV;
      for (int w = 0; w < W; ++w)
        if (lanes[w] == zmax && where[w] < amax) amax = where[w];
    }
    for (int64_t k = KV; k < K; ++k)
      if (z[k] > zmax) zmax = z[k], amax = k;
    if (!(zmax == zmax) || amax >= K) amax = 0;                  // NaN logits: the loss is NaN anyway
    const T inv_esum = T(1) / exp_shift_sum<T>(z, gz, K, zmax);  // gz <- exp(z - max)

    // Off-label sums over all k: S = sum max(p - b, eps), P = sum of p where p - b > eps, sum b^2. A tail is
    // the row's last whole vector again, with the lanes already counted masked out.
    V s_v{}, pu_v{}, mse_v{};
    const auto sums = [&](int64_t k, auto masked, auto lanes) {
      const V p = load_vec(gz + k) * inv_esum, v = load_as<T>(vrow + k);
      const V b = off_label_b<paper, T>(v * v), w = p - b;
      if constexpr (decltype(masked)::value) {
        const auto on = (w > eps) & lanes;
        s_v += lanes ? (on ? w : V{} + eps) : V{};
        pu_v += on ? p : V{};
        mse_v += lanes ? b * b : V{};
      } else {
        const auto on = w > eps;
        s_v += on ? w : V{} + eps;
        pu_v += on ? p : V{};
        mse_v += b * b;
      }
    };
    const int64_t rest = K - KV;
    const bool overlap = rest > 0 && KV > 0;  // a tail done as one more (overlapping) vector
    // The label's v is held at 0 while the passes run (b_c = 0: the off-label form is then exact at c, with no
    // b_c^2 to add and take away again), and restored afterwards.
    const S v_c_old = vrow[c], v_a_old = vrow[amax];
    vrow[c] = S(0);
    for (int64_t k = 0; k < KV; k += W) sums(k, std::false_type{}, 0);
    if (overlap) sums(K - W, std::true_type{}, tail_lanes<T>(rest));
    T s_sum = vsum<T>(s_v), p_on = vsum<T>(pu_v), mse = vsum<T>(mse_v);
    for (int64_t k = overlap ? K : KV; k < K; ++k) {
      const T p = gz[k] * inv_esum, b = b_of(static_cast<T>(vrow[k])), w = p - b;
      s_sum += std::max(w, eps);
      p_on += w > eps ? p : T(0);
      mse += b * b;
    }
    // The label's entry: a_c added instead of the off-label term (with b_c = 0) counted above.
    const T p_c = gz[c] * inv_esum;
    const bool c_on = p_c > eps;
    const T uc = static_cast<T>(paper ? urow[c] : urow[0]);
    const T a_c = paper ? uc * uc : std::min(uc * uc, one);
    const T w_c = p_c + a_c, q_c = std::max(w_c, eps);
    s_sum += q_c - std::max(p_c, eps);
    p_on -= c_on ? p_c : T(0);
    const T ratio = q_c / s_sum;
    T ce, kappa = 1;
    if (paper) {
      ce = -std::log(ratio);
    } else {
      ce = -std::log(std::min(std::max(ratio, eps), one));
      kappa = (ratio > eps && ratio < one) ? one : T(0);
    }
    const T gk = kappa / s_sum;  // g_k off the label where the clamp is inactive
    const T g_c = (w_c > eps ? kappa : T(0)) * (one / s_sum - one / q_c);
    const T dot = gk * p_on + g_c * p_c;  // <g, p>
    // mse: at c the term is (h_c + a_c - 1)^2 (b_c = 0 counted 0); at the argmax (if not c) 1 - 2 b is added.
    const T h_c = amax == c ? one : T(0);
    const T b_a = b_of(static_cast<T>(v_a_old));
    mse += (h_c + a_c - 1) * (h_c + a_c - 1);
    if (amax != c) mse += 1 - 2 * b_a;
    P.sample_loss[i] = static_cast<double>(ce) + static_cast<double>(mse);
    // No update without a step (evaluation), nor from a row whose loss is not finite (an inf or NaN logit
    // would write NaN into the sample's u, v for good).
    const bool update = step && std::isfinite(P.sample_loss[i]);

    // dL/dz = p (g - <g, p>) / B, and (when stepping) v_k -= lr_v 4 v_k b_k / B in place, both off-label form.
    const T gkb = gk * inv_b, dotb = dot * inv_b;
    const auto grad_pass = [&](auto stepping) {
      // One vector of classes from the pre-step e = gz and v: the gradient, and the v step (when stepping).
      struct Out {
        V g, dv;
      };
      const auto row = [&](int64_t k) {
        const V p = load_vec(gz + k) * inv_esum, v = load_as<T>(vrow + k), v2 = v * v;
        const V b = off_label_b<paper, T>(v2);
        Out o{p * ((p - b > eps ? V{} + gkb : V{}) - dotb), V{}};
        if constexpr (decltype(stepping)::value) {
          if constexpr (paper)
            o.dv = lv * v * b;
          else
            o.dv = (v2 > T(0)) & (v2 < one) ? lv * v * b : V{};
        }
        return o;
      };
      const auto put = [&](int64_t k, const Out& o) {
        store_vec(gz + k, o.g);
        if constexpr (decltype(stepping)::value) step_state<T, paper>(vrow + k, o.dv);
      };
      // The overlapping tail vector reads gz and v before the main loop overwrites them, and is stored after
      // it: its gradient lanes hold the values the loop wrote, and its v step is kept to the new lanes only.
      Out last = overlap ? row(K - W) : Out{};
      if (overlap) last.dv = tail_lanes<T>(rest) ? last.dv : V{};
      for (int64_t k = 0; k < KV; k += W) put(k, row(k));
      if (overlap) put(K - W, last);
      for (int64_t k = overlap ? K : KV; k < K; ++k) {
        const T p = gz[k] * inv_esum, v = static_cast<T>(vrow[k]), b = b_of(v);
        gz[k] = p * ((p - b > eps ? gkb : T(0)) - dotb);
        if constexpr (decltype(stepping)::value) step_v(vrow[k], b, T(0));
      }
    };
    if (update)
      grad_pass(std::true_type{});
    else
      grad_pass(std::false_type{});
    gz[c] = p_c * (g_c - dot) * inv_b;
    vrow[c] = v_c_old;  // restored (and, stepping, projected below)
    if (!update) continue;
    // v_c has no gradient (only projected); the argmax's entry has h = 1.
    if (amax != c) {
      vrow[amax] = v_a_old;
      step_v(vrow[amax], b_a, one);
    }
    if (paper) vrow[c] = std::clamp(v_c_old, S(-1), S(1));

    if (paper) {
      // Algorithm 1 projects the whole u row; only u_c has a gradient.
      for (int64_t k = 0; k < K; ++k) urow[k] = std::clamp(urow[k], S(-1), S(1));
      const T du = g_c * 2 * uc * inv_b;
      urow[c] = std::clamp(urow[c] - static_cast<S>(static_cast<T>(P.lr_u) * du), S(-1), S(1));
    } else {
      const T u2 = uc * uc;
      const T du = u2 > T(0) && u2 < one ? (g_c + 2 * (h_c + a_c - 1)) * 2 * uc * inv_b : T(0);
      urow[0] -= static_cast<S>(static_cast<T>(P.lr_u) * du);
    }
  }
}

template <typename T, typename S>
void sop_step_impl(const dopfast::cpu::SopBatch<T, S>& P, int64_t i0, int64_t i1) {
  if (P.paper)
    sop_rows<true>(P, i0, i1);
  else
    sop_rows<false>(P, i0, i1);
}
