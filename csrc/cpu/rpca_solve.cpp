// CPU rpca_dop_solve / rpca_dop_solve_uv. Small problems run the whole loop in the raw in-cache kernel of
// kernels/rpca.h; larger ones do their two products with the BLAS (at::mm_out into reused buffers) and the rest
// of the step in the same fused raw passes. Either way, one thread per problem of a batch.
#include "cpu/kernel_table.h"
#include "rpca_args.h"
#include "rpca_stopping.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

namespace dopfast::cpu {
namespace {

// Above this many entries of Y (per problem) the BLAS's blocked products beat the in-cache kernel.
constexpr int64_t kSmallProblemEntries = 128 * 128;

// One problem with BLAS products; same steps and stopping rule as rpca_solve_impl. u, v, g, h are the
// problem's (contiguous) slices of the outputs.
template <typename T>
int64_t rpca_solve_blas(const KernelTable<T>& kern, bool sym, const at::Tensor& y, const bool* mask, at::Tensor u,
                        at::Tensor v, at::Tensor g, at::Tensor h, double tau, double alpha, int64_t iters, double tol,
                        T* losses) {
  const int64_t m = y.size(0), n = y.size(1);
  at::Tensor x = at::empty({m, n}, y.options());
  at::Tensor gu = at::empty_like(u);
  at::Tensor gv = sym ? at::Tensor() : at::empty_like(v);
  const T t = static_cast<T>(tau), ga = static_cast<T>(alpha * tau);
  double prev_loss = 0;
  int64_t it = 0;
  for (; it < iters; ++it) {
    at::mm_out(x, u, sym ? u.t() : v.t());
    double step_sq = 0, theta_sq = 0;
    const double sum_sq = kern.rpca_residual(x.data_ptr<T>(), y.const_data_ptr<T>(), mask, g.data_ptr<T>(),
                                             h.data_ptr<T>(), m, n, ga, sym, step_sq, theta_sq);
    const double loss = rpca_loss<T>(sum_sq);
    losses[it] = static_cast<T>(loss);
    if (!rpca_loss_finite<T>(sum_sq)) return it + 1;  // g, h took this step; U, V do not
    if (sym) {
      at::mm_out(gu, x, u);  // (R + R^T)/2 U
    } else {
      at::mm_out(gu, x, v);
      at::mm_out(gv, x.t(), u);
      kern.factor_update(v.data_ptr<T>(), gv.const_data_ptr<T>(), v.numel(), t, step_sq, theta_sq);
    }
    kern.factor_update(u.data_ptr<T>(), gu.const_data_ptr<T>(), u.numel(), t, step_sq, theta_sq);
    const bool done = it > 0 && tol > 0 && rpca_converged(prev_loss, loss, step_sq, theta_sq, tol);
    prev_loss = loss;
    if (done) return it + 1;
  }
  return it;
}

RpcaOutputs rpca_solve_cpu_impl(std::string_view op, const at::Tensor& y, const at::Tensor& u0,
                                const std::optional<at::Tensor>& v0, const at::Tensor& g0, const at::Tensor& h0,
                                double tau, double alpha, int64_t iters, double tol,
                                const std::optional<at::Tensor>& mask) {
  bool batched = false;
  RpcaOutputs out = prepare_rpca(op, y, u0, v0, g0, h0, tau, alpha, iters, tol, mask, batched);
  const at::Tensor y3 = (batched ? y : y.unsqueeze(0)).contiguous();
  const int64_t B = y3.size(0), m = y3.size(1), n = y3.size(2), k = out.u.size(2);
  if (B == 0 || iters == 0) return finish_rpca(std::move(out), batched);
  const bool small = m * n <= kSmallProblemEntries;
  out.losses.fill_(std::numeric_limits<double>::quiet_NaN());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "dopfast_rpca_dop_solve_cpu", [&] {
    const auto& kern = kernels(scalar_t{});
    const scalar_t* yp = y3.const_data_ptr<scalar_t>();
    scalar_t* up = out.u.mutable_data_ptr<scalar_t>();
    scalar_t* vp = out.sym ? nullptr : out.v.mutable_data_ptr<scalar_t>();
    scalar_t* gp = out.g.mutable_data_ptr<scalar_t>();
    scalar_t* hp = out.h.mutable_data_ptr<scalar_t>();
    scalar_t* lp = out.losses.mutable_data_ptr<scalar_t>();
    const bool* mp = out.mask.defined() ? out.mask.const_data_ptr<bool>() : nullptr;
    int64_t* np_out = out.n_iter.mutable_data_ptr<int64_t>();
    // One problem per task: the batch is the unit of parallelism, never the inside of one small problem.
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (!small) {
          np_out[b] = rpca_solve_blas<scalar_t>(kern, out.sym, y3[b], mp ? mp + b * m * n : nullptr, out.u[b],
                                                out.sym ? at::Tensor() : out.v[b], out.g[b], out.h[b], tau, alpha,
                                                iters, tol, lp + b * iters);
          continue;
        }
        RpcaProblem<scalar_t> p;
        p.sym = out.sym;
        p.m = m;
        p.n = n;
        p.k = k;
        p.y = yp + b * m * n;
        p.mask = mp ? mp + b * m * n : nullptr;
        p.u = up + b * m * k;
        p.v = out.sym ? nullptr : vp + b * n * k;
        p.g = gp + b * m * n;
        p.h = hp + b * m * n;
        p.tau = tau;
        p.alpha = alpha;
        p.tol = tol;
        p.iters = iters;
        p.losses = lp + b * iters;
        np_out[b] = kern.rpca_solve(p);
      }
    });
  });
  return finish_rpca(std::move(out), batched);
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CPU, m) {
  m.impl("rpca_dop_solve", &rpca_dop_solve_entry<rpca_solve_cpu_impl>);
  m.impl("rpca_dop_solve_uv", &rpca_dop_solve_uv_entry<rpca_solve_cpu_impl>);
}

}  // namespace dopfast::cpu
