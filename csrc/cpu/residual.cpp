// CPU kernels of the residual family: residual_step_, residual_step_out_, dop_residual, dop_residual_backward.
#include "cpu/kernel_table.h"
#include "cpu/streaming_output.h"
#include "residual_args.h"
#include "rpca_stopping.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace dopfast::cpu {
namespace {

// Fixed-size chunks make the sum of squares independent of the thread count; threads are used only for
// tensors of several MiB (on small tensors a parallel region costs more than it saves).
constexpr int64_t kChunk = 1 << 15;
constexpr int64_t kChunksPerThread = 32;

template <typename F>
void for_each_chunk(int64_t numel, const F& f) {
  const int64_t chunks = (numel + kChunk - 1) / kChunk;
  at::parallel_for(0, chunks, kChunksPerThread, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t begin = c * kChunk;
      f(c, begin, std::min(numel, begin + kChunk) - begin);
    }
  });
}

at::Tensor residual_step_into(const at::Tensor& x, at::Tensor& g, at::Tensor& h, const at::Tensor& y, double step,
                              const std::optional<at::Tensor>& mask, at::Tensor& r_contig) {
  const at::Tensor xc = x.contiguous(), yc = y.contiguous();
  const at::Tensor mc = mask ? mask->contiguous() : at::Tensor();
  const bool* mp = mask ? mc.const_data_ptr<bool>() : nullptr;
  InplaceContiguous gw(g), hw(h);
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dopfast_residual_step_cpu", [&] {
    const auto& k = kernels(scalar_t{});
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* yp = yc.const_data_ptr<scalar_t>();
    scalar_t* gp = gw.work.mutable_data_ptr<scalar_t>();
    scalar_t* hp = hw.work.mutable_data_ptr<scalar_t>();
    scalar_t* rp = r_contig.mutable_data_ptr<scalar_t>();
    const int64_t numel = x.numel();
    std::vector<double> partial((numel + kChunk - 1) / kChunk, 0.0);
    for_each_chunk(numel, [&](int64_t c, int64_t b, int64_t len) {
      partial[c] = k.residual_step(xp + b, gp + b, hp + b, yp + b, mp ? mp + b : nullptr, rp + b, len,
                                   static_cast<scalar_t>(step));
    });
    for (double v : partial) total += v;
  });
  gw.finish();
  hw.finish();
  // 1/4 ||r||^2 as the tensors' precision sees the sum (a float32 sum beyond FLT_MAX is inf, as in the
  // reference), never an error raised after g, h and r were written.
  const double loss = x.scalar_type() == at::kFloat ? rpca_loss<float>(total) : rpca_loss<double>(total);
  return at::empty({}, x.options()).fill_(loss);
}

std::tuple<at::Tensor, at::Tensor> residual_step_cpu(const at::Tensor& x, at::Tensor& g, at::Tensor& h,
                                                     const at::Tensor& y, double step,
                                                     const std::optional<at::Tensor>& mask) {
  return residual_step_op(x, g, h, y, step, mask, residual_step_into, empty_streaming_output);
}

at::Tensor residual_step_out_cpu(const at::Tensor& x, at::Tensor& g, at::Tensor& h, const at::Tensor& y, double step,
                                 at::Tensor& r, const std::optional<at::Tensor>& mask) {
  return residual_step_out_op(x, g, h, y, step, r, mask, residual_step_into);
}

at::Tensor dop_residual_cpu(const at::Tensor& x, const at::Tensor& g, const at::Tensor& h, const at::Tensor& y) {
  check_residual_args("dop_residual", x, g, h, y);
  const at::Tensor xc = x.contiguous(), gc = g.contiguous(), hc = h.contiguous(), yc = y.contiguous();
  at::Tensor r = empty_streaming_output(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dopfast_dop_residual_cpu", [&] {
    const auto& k = kernels(scalar_t{});
    const scalar_t *xp = xc.const_data_ptr<scalar_t>(), *gp = gc.const_data_ptr<scalar_t>(),
                   *hp = hc.const_data_ptr<scalar_t>(), *yp = yc.const_data_ptr<scalar_t>();
    scalar_t* rp = r.mutable_data_ptr<scalar_t>();
    for_each_chunk(x.numel(), [&](int64_t, int64_t b, int64_t len) {
      k.dop_residual(xp + b, gp + b, hp + b, yp + b, rp + b, len);
    });
  });
  return r;
}

std::tuple<at::Tensor, at::Tensor> dop_residual_backward_cpu(const at::Tensor& grad, const at::Tensor& g,
                                                             const at::Tensor& h) {
  check_residual_backward_args(grad, g, h);
  const at::Tensor dc = grad.contiguous(), gc = g.contiguous(), hc = h.contiguous();
  at::Tensor grad_g = empty_streaming_output(g), grad_h = empty_streaming_output(h);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "dopfast_dop_residual_backward_cpu", [&] {
    const auto& k = kernels(scalar_t{});
    const scalar_t *dp = dc.const_data_ptr<scalar_t>(), *gp = gc.const_data_ptr<scalar_t>(),
                   *hp = hc.const_data_ptr<scalar_t>();
    scalar_t *ggp = grad_g.mutable_data_ptr<scalar_t>(), *ghp = grad_h.mutable_data_ptr<scalar_t>();
    for_each_chunk(grad.numel(), [&](int64_t, int64_t b, int64_t len) {
      k.dop_residual_backward(dp + b, gp + b, hp + b, ggp + b, ghp + b, len);
    });
  });
  return {grad_g, grad_h};
}

}  // namespace

TORCH_LIBRARY_IMPL(dopfast, CPU, m) {
  m.impl("residual_step_", &residual_step_cpu);
  m.impl("residual_step_out_", &residual_step_out_cpu);
  m.impl("dop_residual", &dop_residual_cpu);
  m.impl("dop_residual_backward", &dop_residual_backward_cpu);
}

}  // namespace dopfast::cpu
