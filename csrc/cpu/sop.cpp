// CPU sop_loss_step_: checks (including the index contract), then the raw per-sample kernel, parallel over
// samples for large batches.
#include "cpu/kernel_table.h"
#include "cpu/streaming_output.h"
#include "sop_args.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

namespace dopfast::cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> sop_loss_step_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                                     const at::Tensor& index, at::Tensor& u, at::Tensor& v, double lr_u,
                                                     double lr_v, bool paper) {
  check_sop_args(logits, targets, index, u, v, lr_u, lr_v, paper);
  const int64_t B = logits.size(0), K = logits.size(1);
  check_sop_indices(targets, index, K, v.size(0));
  // Reduced-precision logits are computed in float32 (u, v always stay in their own precision).
  const bool low = logits.scalar_type() != at::kFloat && logits.scalar_type() != at::kDouble;
  const at::Tensor z = (low ? logits.to(at::kFloat) : logits).contiguous();
  const at::Tensor tc = targets.contiguous(), ic = index.contiguous();
  InplaceContiguous uw(u), vw(v);
  at::Tensor grad = empty_streaming({B, K}, z.options());
  std::vector<double> sample_loss(static_cast<size_t>(B), 0.0);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "dopfast_sop_loss_step_cpu", [&] {
    const auto run = [&](auto state_tag) {
      using S = decltype(state_tag);
      SopBatch<scalar_t, S> p;
      p.batch = B;
      p.classes = K;
      p.logits = z.const_data_ptr<scalar_t>();
      p.targets = tc.const_data_ptr<int64_t>();
      p.index = ic.const_data_ptr<int64_t>();
      p.u = uw.work.mutable_data_ptr<S>();
      p.u_cols = u.size(1);
      p.v = vw.work.mutable_data_ptr<S>();
      p.grad = grad.mutable_data_ptr<scalar_t>();
      p.sample_loss = sample_loss.data();
      p.lr_u = lr_u;
      p.lr_v = lr_v;
      p.paper = paper;
      const auto& k = kernels(scalar_t{});
      void (*step)(const SopBatch<scalar_t, S>&, int64_t, int64_t) = nullptr;
      if constexpr (std::is_same_v<S, float>)
        step = k.sop_step_f32;
      else
        step = k.sop_step_f64;
      // Threads only pay for large batches (on small ones a parallel region costs more than the work).
      const int64_t grain = std::max<int64_t>(1, (1 << 16) / K);
      at::parallel_for(0, B, grain, [&](int64_t i0, int64_t i1) { step(p, i0, i1); });
    };
    if (u.scalar_type() == at::kFloat)
      run(float{});
    else
      run(double{});
  });
  uw.finish();
  vw.finish();
  double total = 0;
  for (double x : sample_loss) total += x;
  const auto loss_dtype = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor loss = at::empty({}, logits.options().dtype(loss_dtype))
                        .fill_(B > 0 ? total / B : std::numeric_limits<double>::quiet_NaN());
  return {loss, low ? grad.to(logits.scalar_type()) : grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CPU, m) { m.impl("sop_loss_step_", &sop_loss_step_cpu); }

}  // namespace dopfast::cpu
