#include "rpca_aten_loop.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/any.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/logical_and.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/where.h>

#include <limits>

namespace dopfast {

namespace {
at::Tensor sq_norm(const at::Tensor& t) {  // (B, ...) -> (B,)
  return t.mul(t).sum({-2, -1});
}
at::Tensor bcast(const at::Tensor& t) {  // (B,) -> (B, 1, 1)
  return t.view({-1, 1, 1});
}
}  // namespace

void rpca_aten_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol) {
  // Convergence is decided on the device; the host looks every kCheckEvery steps whether any problem is
  // still running, so a GPU run does not synchronise on every step.
  constexpr int64_t kCheckEvery = 16;
  const at::Tensor y3 = y.dim() == 3 ? y : y.unsqueeze(0);
  const bool sym = !out.v.defined();
  at::Tensor& u = out.u;
  at::Tensor& g = out.g;
  at::Tensor& h = out.h;
  const auto opts = y.options();
  const int64_t B = y3.size(0);
  at::Tensor active = at::ones({B}, opts.dtype(at::kBool));
  at::Tensor prev_loss = at::zeros({B}, opts);
  const at::Tensor nan = at::full_like(prev_loss, std::numeric_limits<double>::quiet_NaN());
  const double tiny = std::numeric_limits<double>::min();
  out.losses.fill_(std::numeric_limits<double>::quiet_NaN());
  for (int64_t it = 0; it < iters; ++it) {
    const at::Tensor x = sym ? at::matmul(u, u.mT()) : at::matmul(u, out.v.mT());
    const at::Tensor r = x + g * g - h * h - y3;
    const at::Tensor loss = sq_norm(r).mul_(0.25);
    out.losses.select(1, it).copy_(at::where(active, loss, nan));
    const at::Tensor live = at::logical_and(active, at::isfinite(loss));
    const at::Tensor step = bcast(live.to(opts.dtype()));
    const at::Tensor dg = (r * g).mul_(step * (alpha * tau));
    const at::Tensor dh = (r * h).mul_(step * (alpha * tau));
    at::Tensor theta_sq = sq_norm(u) + sq_norm(g) + sq_norm(h);
    at::Tensor step_sq = sq_norm(dg) + sq_norm(dh);
    if (sym) {
      const at::Tensor du = at::matmul((r + r.mT()).mul_(0.5), u).mul_(step * tau);
      step_sq += sq_norm(du);
      u.sub_(du);
    } else {
      at::Tensor& v = out.v;
      const at::Tensor du = at::matmul(r, v).mul_(step * tau);
      const at::Tensor dv = at::matmul(r.mT(), u).mul_(step * tau);
      theta_sq += sq_norm(v);
      step_sq += sq_norm(du) + sq_norm(dv);
      u.sub_(du);
      v.sub_(dv);
    }
    g.sub_(dg);
    h.add_(dh);
    out.n_iter.add_(active.to(at::kLong));
    if (tol > 0 && it > 0) {
      const at::Tensor loss_change = at::abs(prev_loss - loss) / at::clamp_min(prev_loss, tiny);
      const at::Tensor rel_step = at::sqrt(step_sq / at::clamp_min(theta_sq, tiny));
      const at::Tensor converged = at::logical_and(loss_change <= tol, rel_step <= tol);
      active = at::logical_and(live, at::logical_not(converged));
    } else {
      active = live;
    }
    prev_loss = loss;
    if ((it + 1) % kCheckEvery == 0 && !active.any().item<bool>()) break;
  }
}

}  // namespace dopfast
