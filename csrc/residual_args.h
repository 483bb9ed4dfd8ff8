// Argument handling shared by the CPU and CUDA wrappers of the residual ops.
#pragma once

#include "checks.h"

#include <ATen/ops/empty.h>

#include <initializer_list>
#include <optional>
#include <tuple>
#include <utility>

namespace dopfast {

// x, g, h, y: same shape, dtype (float32/float64) and device.
inline void check_residual_args(std::string_view op, const at::Tensor& x, const at::Tensor& g, const at::Tensor& h,
                                const at::Tensor& y) {
  check_float_tensor(x, op, "x");
  check_like(x, "x", g, op, "g");
  check_like(x, "x", h, op, "h");
  check_like(x, "x", y, op, "y");
}

// g and h are written: they must not share memory with each other or with the read-only inputs.
inline void check_residual_step_args(std::string_view op, const at::Tensor& x, const at::Tensor& g, const at::Tensor& h,
                                     const at::Tensor& y, double step) {
  check_residual_args(op, x, g, h, y);
  check_finite_scalar(step, op, "step");
  check_no_internal_overlap(g, op, "g");
  check_no_internal_overlap(h, op, "h");
  check_no_overlap(g, "g", h, "h", op);
  check_no_overlap(g, "g", x, "x", op);
  check_no_overlap(g, "g", y, "y", op);
  check_no_overlap(h, "h", x, "x", op);
  check_no_overlap(h, "h", y, "y", op);
}

// The optional observation mask (check_observation_mask), not sharing memory with what is written.
inline void check_residual_mask(std::string_view op, const at::Tensor& x, const std::optional<at::Tensor>& mask,
                                std::initializer_list<std::pair<const at::Tensor*, std::string_view>> written) {
  check_observation_mask(op, x, "x", mask);
  if (mask)
    for (const auto& [t, name] : written) check_no_overlap(*t, name, *mask, "mask", op);
}

inline void check_residual_backward_args(const at::Tensor& grad, const at::Tensor& g, const at::Tensor& h) {
  check_float_tensor(grad, "dop_residual_backward", "grad");
  check_like(grad, "grad", g, "dop_residual_backward", "g");
  check_like(grad, "grad", h, "dop_residual_backward", "h");
}

// The two entry points of residual_step, shared by the backends. `into(x, g, h, y, step, mask, r)` runs the
// backend's kernel with a contiguous output r and returns the loss tensor.
// `make_output(x)` allocates the contiguous residual.
template <typename Into, typename MakeOutput>
std::tuple<at::Tensor, at::Tensor> residual_step_op(const at::Tensor& x, at::Tensor& g, at::Tensor& h,
                                                    const at::Tensor& y, double step,
                                                    const std::optional<at::Tensor>& mask, Into&& into,
                                                    MakeOutput&& make_output) {
  check_residual_step_args("residual_step_", x, g, h, y, step);
  check_residual_mask("residual_step_", x, mask, {{&g, "g"}, {&h, "h"}});
  at::Tensor r = make_output(x);
  at::Tensor loss = into(x, g, h, y, step, mask, r);
  return {r, loss};
}

template <typename Into>
at::Tensor residual_step_out_op(const at::Tensor& x, at::Tensor& g, at::Tensor& h, const at::Tensor& y, double step,
                                at::Tensor& r, const std::optional<at::Tensor>& mask, Into&& into) {
  constexpr std::string_view op = "residual_step_out_";
  check_residual_step_args(op, x, g, h, y, step);
  check_like(x, "x", r, op, "r");
  check_no_internal_overlap(r, op, "r");
  check_no_overlap(r, "r", x, "x", op);
  check_no_overlap(r, "r", g, "g", op);
  check_no_overlap(r, "r", h, "h", op);
  check_no_overlap(r, "r", y, "y", op);
  check_residual_mask(op, x, mask, {{&g, "g"}, {&h, "h"}, {&r, "r"}});
  InplaceContiguous rw(r);
  at::Tensor loss = into(x, g, h, y, step, mask, rw.work);
  rw.finish();
  return loss;
}

}  // namespace dopfast
