// CPU rpca_dop_solve / rpca_dop_solve_uv: small problems run the whole loop in the raw kernel of
// simd_rpca.h, one thread per problem of a batch; large ones use the ATen loop (MKL GEMMs).
#include "cpu/simd_api.h"
#include "rpca_aten_loop.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

namespace dopfast::cpu {
namespace {

// Above this many entries of Y (per problem) the blocked MKL product beats the in-cache kernel.
constexpr int64_t kSmallProblemEntries = 160 * 160;

RpcaOutputs rpca_solve_cpu_impl(std::string_view op, const at::Tensor& y, const at::Tensor& u0,
                                const std::optional<at::Tensor>& v0, const at::Tensor& g0, const at::Tensor& h0,
                                double tau, double alpha, int64_t iters, double tol) {
  bool batched = false;
  RpcaOutputs out = prepare_rpca(op, y, u0, v0, g0, h0, tau, alpha, iters, tol, batched);
  const at::Tensor y3 = (batched ? y : y.unsqueeze(0)).contiguous();
  const int64_t B = y3.size(0), m = y3.size(1), n = y3.size(2), k = out.u.size(2);
  if (B == 0 || iters == 0) return finish_rpca(std::move(out), batched);
  if (m * n > kSmallProblemEntries || m * n == 0) {
    rpca_aten_loop(y3, out, tau, alpha, iters, tol);
    return finish_rpca(std::move(out), batched);
  }
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "dopfast_rpca_dop_solve_cpu", [&] {
    const auto& kern = kernels(scalar_t{});
    const scalar_t* yp = y3.const_data_ptr<scalar_t>();
    scalar_t* up = out.u.mutable_data_ptr<scalar_t>();
    scalar_t* vp = out.v.defined() ? out.v.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* gp = out.g.mutable_data_ptr<scalar_t>();
    scalar_t* hp = out.h.mutable_data_ptr<scalar_t>();
    scalar_t* lp = out.losses.mutable_data_ptr<scalar_t>();
    int64_t* np_out = out.n_iter.mutable_data_ptr<int64_t>();
    // One problem per task: the batch is the unit of parallelism, never the inside of one small problem.
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        RpcaProblem<scalar_t> p;
        p.m = m;
        p.n = n;
        p.k = k;
        p.y = yp + b * m * n;
        p.u = up + b * m * k;
        p.v = vp ? vp + b * n * k : nullptr;
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

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rpca_dop_solve_cpu(
    const at::Tensor& y, const at::Tensor& u0, const at::Tensor& g0, const at::Tensor& h0, double tau, double alpha,
    int64_t iters, double tol) {
  RpcaOutputs o = rpca_solve_cpu_impl("rpca_dop_solve", y, u0, std::nullopt, g0, h0, tau, alpha, iters, tol);
  return {o.u, o.g, o.h, o.losses, o.n_iter};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rpca_dop_solve_uv_cpu(
    const at::Tensor& y, const at::Tensor& u0, const at::Tensor& v0, const at::Tensor& g0, const at::Tensor& h0,
    double tau, double alpha, int64_t iters, double tol) {
  RpcaOutputs o = rpca_solve_cpu_impl("rpca_dop_solve_uv", y, u0, v0, g0, h0, tau, alpha, iters, tol);
  return {o.u, o.v, o.g, o.h, o.losses, o.n_iter};
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CPU, m) {
  m.impl("rpca_dop_solve", &rpca_dop_solve_cpu);
  m.impl("rpca_dop_solve_uv", &rpca_dop_solve_uv_cpu);
}

}  // namespace dopfast::cpu
