// The DOP loop written with ATen ops (batched cuBLAS products, elementwise passes): what the fused loop of
// rpca_fused_loop.cpp is checked against, and its fallback (DOPFAST_CUDA_LOOP=aten). Same contract as the kernels: sums
// in double, per-problem stopping by the rule of rpca_stopping.h, and after a non-finite step g, h keep that step while
// U, V do not.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/any.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/logical_and.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <cfloat>
#include <limits>

namespace dopfast {
// Tensor forms of the stopping rule's building blocks (declared before the rule's template is read).
inline at::Tensor stop_abs(const at::Tensor& x) { return at::abs(x); }
inline at::Tensor stop_sqrt(const at::Tensor& x) { return at::sqrt(x); }
inline at::Tensor stop_floor(const at::Tensor& x) { return at::clamp_min(x, DBL_MIN); }
inline at::Tensor stop_and(const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }
}  // namespace dopfast

#include "cuda/rpca_aten_loop.h"
#include "rpca_stopping.h"

namespace dopfast {

namespace {
at::Tensor sq_norm(const at::Tensor& t) {  // (B, ...) -> (B,), summed in double
  return t.mul(t).sum({-2, -1}, /*keepdim=*/false, at::kDouble);
}
at::Tensor bcast(const at::Tensor& t) {  // (B,) -> (B, 1, 1)
  return t.view({-1, 1, 1});
}
// x where the problem's mask is set, 0 elsewhere (NaN-safe, unlike multiplying by the mask).
at::Tensor masked(const at::Tensor& mask, const at::Tensor& x) { return at::where(bcast(mask), x, 0); }
}  // namespace

void rpca_aten_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol) {
  // Convergence is decided on the device; the host looks every kCheckEvery steps whether any problem is
  // still running, so a GPU run does not synchronise on every step.
  constexpr int64_t kCheckEvery = 16;
  const at::Tensor y3 = y.dim() == 3 ? y : y.unsqueeze(0);
  const bool sym = out.sym;
  at::Tensor& u = out.u;
  at::Tensor& g = out.g;
  at::Tensor& h = out.h;
  const int64_t B = y3.size(0);
  const auto dbl = y.options().dtype(at::kDouble);
  at::Tensor active = at::ones({B}, y.options().dtype(at::kBool));
  at::Tensor prev_loss = at::zeros({B}, dbl);
  const at::Tensor nan = at::full_like(prev_loss, std::numeric_limits<double>::quiet_NaN()).to(y.scalar_type());
  out.losses.fill_(std::numeric_limits<double>::quiet_NaN());
  for (int64_t it = 0; it < iters; ++it) {
    const at::Tensor x = sym ? at::matmul(u, u.mT()) : at::matmul(u, out.v.mT());
    const at::Tensor full = x + g * g - h * h - y3;
    const at::Tensor r = out.mask.defined() ? at::where(out.mask, full, 0) : full;  // missing entries: r = 0
    const at::Tensor sum_sq = sq_norm(r);
    // The loss as the problem's precision sees it (a float32 sum beyond FLT_MAX is inf, NaN stays NaN), exactly
    // as rpca_loss<T> / rpca_loss_finite<T> in the kernels.
    const at::Tensor loss = sum_sq.to(y.scalar_type()).to(at::kDouble).mul_(0.25);
    const at::Tensor finite = at::isfinite(loss);
    out.losses.select(1, it).copy_(at::where(active, loss.to(y.scalar_type()), nan));
    const at::Tensor live = at::logical_and(active, finite);
    const at::Tensor dg = masked(active, r * g * (alpha * tau));  // g, h take the step even when it is non-finite
    const at::Tensor dh = masked(active, r * h * (alpha * tau));
    at::Tensor theta_sq = sq_norm(u) + sq_norm(g) + sq_norm(h);
    at::Tensor step_sq = sq_norm(dg) + sq_norm(dh);
    if (sym) {
      const at::Tensor du = masked(live, at::matmul((r + r.mT()).mul_(0.5), u).mul_(tau));
      step_sq += sq_norm(du);
      u.sub_(du);
    } else {
      at::Tensor& v = out.v;
      const at::Tensor du = masked(live, at::matmul(r, v).mul_(tau));
      const at::Tensor dv = masked(live, at::matmul(r.mT(), u).mul_(tau));
      theta_sq += sq_norm(v);
      step_sq += sq_norm(du) + sq_norm(dv);
      u.sub_(du);
      v.sub_(dv);
    }
    g.sub_(dg);
    h.add_(dh);
    out.n_iter.add_(active.to(at::kLong));
    if (tol > 0 && it > 0) {
      const at::Tensor converged = rpca_converged(prev_loss, loss, step_sq, theta_sq, tol);
      active = at::logical_and(live, at::logical_not(converged));
    } else {
      active = live;
    }
    prev_loss = loss;
    if ((it + 1) % kCheckEvery == 0 && !active.any().item<bool>()) break;
  }
}

}  // namespace dopfast
