// Argument checks and output allocation shared by every backend of rpca_dop_solve / rpca_dop_solve_uv.
#pragma once

#include "checks.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <optional>
#include <tuple>

namespace dopfast {

struct RpcaOutputs {
  bool sym = true;  // U U^T (v undefined) or U V^T; never inferred from v's data pointer
  at::Tensor u, v, g, h, losses, n_iter;
  at::Tensor mask;  // input, not output: (B, m, n) contiguous bool, or undefined (every entry observed)
};

// Checks the arguments and returns working copies (contiguous, owned) that the solver updates in place.
// Unbatched inputs are viewed as a batch of one; `batched` says which.
inline RpcaOutputs prepare_rpca(std::string_view op, const at::Tensor& y, const at::Tensor& u0,
                                const std::optional<at::Tensor>& v0, const at::Tensor& g0, const at::Tensor& h0,
                                double tau, double alpha, int64_t iters, double tol,
                                const std::optional<at::Tensor>& mask, bool& batched) {
  check_float_tensor(y, op, "y");
  TORCH_CHECK(y.dim() == 2 || y.dim() == 3, "dopfast.", op,
              ": y must be a matrix (m, n) or a batch of matrices (B, m, n), got shape ", y.sizes());
  batched = y.dim() == 3;
  const int64_t B = batched ? y.size(0) : 1, m = y.size(-2), n = y.size(-1);
  const bool sym = !v0.has_value();
  TORCH_CHECK(!sym || m == n, "dopfast.", op, ": the U U^T model needs square y, got shape ", y.sizes(),
              " (use rpca_dop_solve_uv for rectangular data)");
  check_like(y, "y", u0, op, "u0", /*same_shape=*/false);
  TORCH_CHECK(u0.dim() == y.dim() && u0.size(-2) == m && (!batched || u0.size(0) == B), "dopfast.", op,
              ": u0 must have shape ", batched ? "(B, m, k)" : "(m, k)", " matching y ", y.sizes(), ", got ",
              u0.sizes());
  const int64_t k = u0.size(-1);
  if (!sym) {
    check_like(y, "y", *v0, op, "v0", /*same_shape=*/false);
    TORCH_CHECK(v0->dim() == y.dim() && v0->size(-2) == n && v0->size(-1) == k && (!batched || v0->size(0) == B),
                "dopfast.", op, ": v0 must have shape ", batched ? "(B, n, k)" : "(n, k)", " with n = ", n,
                " and k = ", k, " (from y and u0), got ", v0->sizes());
  }
  check_like(y, "y", g0, op, "g0");
  check_like(y, "y", h0, op, "h0");
  check_finite_scalar(tau, op, "tau");
  check_finite_scalar(alpha, op, "alpha");
  TORCH_CHECK(tau > 0, "dopfast.", op, ": tau must be > 0, got ", tau);
  TORCH_CHECK(alpha > 0, "dopfast.", op, ": alpha must be > 0, got ", alpha);
  check_finite_scalar(alpha * tau, op, "alpha * tau");
  TORCH_CHECK(iters >= 0, "dopfast.", op, ": iters must be >= 0, got ", iters);
  // The losses of every step are returned: refuse what cannot be allocated, with the way out.
  constexpr int64_t kMaxLossEntries = int64_t(1) << 28;
  TORCH_CHECK(iters <= kMaxLossEntries / std::max<int64_t>(B, 1), "dopfast.", op, ": iters = ", iters, " steps for ", B,
              " problem(s) would return ", iters * static_cast<double>(B),
              " losses; call the solver in chunks of at most ", kMaxLossEntries / std::max<int64_t>(B, 1),
              " steps (it resumes from the returned u, g, h; RobustPCA does this)");
  check_finite_scalar(tol, op, "tol");
  TORCH_CHECK(tol >= 0, "dopfast.", op, ": tol must be >= 0, got ", tol);
  check_observation_mask(op, y, "y", mask);

  const auto own = [&](const at::Tensor& t) {
    return (batched ? t : t.unsqueeze(0)).clone(at::MemoryFormat::Contiguous);
  };
  RpcaOutputs out;
  out.sym = sym;
  out.u = own(u0);
  if (!sym) out.v = own(*v0);
  out.g = own(g0);
  out.h = own(h0);
  out.losses = at::empty({B, iters}, y.options());
  out.n_iter = at::zeros({B}, y.options().dtype(at::kLong));
  if (mask) out.mask = (batched ? *mask : mask->unsqueeze(0)).contiguous();
  return out;
}

// Drops the batch dimension again for unbatched calls.
inline RpcaOutputs finish_rpca(RpcaOutputs out, bool batched) {
  if (!batched) {
    for (at::Tensor* t : {&out.u, &out.v, &out.g, &out.h, &out.losses, &out.n_iter, &out.mask})
      if (t->defined()) *t = t->squeeze(0);
  }
  return out;
}

// The two registered entry points over one backend's solver `Impl` (U U^T and U V^T models).
using RpcaImpl = RpcaOutputs (*)(std::string_view, const at::Tensor&, const at::Tensor&,
                                 const std::optional<at::Tensor>&, const at::Tensor&, const at::Tensor&, double, double,
                                 int64_t, double, const std::optional<at::Tensor>&);

template <RpcaImpl Impl>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rpca_dop_solve_entry(
    const at::Tensor& y, const at::Tensor& u0, const at::Tensor& g0, const at::Tensor& h0, double tau, double alpha,
    int64_t iters, double tol, const std::optional<at::Tensor>& mask) {
  RpcaOutputs o = Impl("rpca_dop_solve", y, u0, std::nullopt, g0, h0, tau, alpha, iters, tol, mask);
  return {o.u, o.g, o.h, o.losses, o.n_iter};
}

template <RpcaImpl Impl>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rpca_dop_solve_uv_entry(
    const at::Tensor& y, const at::Tensor& u0, const at::Tensor& v0, const at::Tensor& g0, const at::Tensor& h0,
    double tau, double alpha, int64_t iters, double tol, const std::optional<at::Tensor>& mask) {
  RpcaOutputs o = Impl("rpca_dop_solve_uv", y, u0, v0, g0, h0, tau, alpha, iters, tol, mask);
  return {o.u, o.v, o.g, o.h, o.losses, o.n_iter};
}

}  // namespace dopfast
