// Argument checks shared by every op. Each message names the argument and echoes what arrived,
// so a user sees e.g. "dopfast.residual_step_: g must have the shape of x [4, 5], got [4, 6]".
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/MemoryOverlap.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <string_view>

namespace dopfast {

inline void check_float_tensor(const at::Tensor& t, std::string_view op, std::string_view name) {
  TORCH_CHECK(t.defined(), "dopfast.", op, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "dopfast.", op, ": ", name,
              " must be a float32 or float64 tensor, got ", t.scalar_type());
  TORCH_CHECK(t.layout() == at::kStrided, "dopfast.", op, ": ", name, " must be a dense (strided) tensor, got ",
              t.layout());
}

inline void check_like(const at::Tensor& ref, std::string_view ref_name, const at::Tensor& t, std::string_view op,
                       std::string_view name, bool same_shape = true) {
  check_float_tensor(t, op, name);
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "dopfast.", op, ": ", name, " must have the dtype of ", ref_name,
              " (", ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), "dopfast.", op, ": ", name, " must be on the device of ", ref_name, " (",
              ref.device(), "), got ", t.device());
  if (same_shape) {
    TORCH_CHECK(t.sizes() == ref.sizes(), "dopfast.", op, ": ", name, " must have the shape of ", ref_name, " ",
                ref.sizes(), ", got ", t.sizes());
  }
}

inline void check_dim(const at::Tensor& t, int64_t dim, std::string_view op, std::string_view name,
                      std::string_view what) {
  TORCH_CHECK(t.dim() == dim, "dopfast.", op, ": ", name, " must be ", what, ", got shape ", t.sizes());
}

inline void check_finite_scalar(double v, std::string_view op, std::string_view name) {
  TORCH_CHECK(std::isfinite(v), "dopfast.", op, ": ", name, " must be a finite number, got ", v);
}

inline void check_no_overlap(const at::Tensor& a, std::string_view a_name, const at::Tensor& b, std::string_view b_name,
                             std::string_view op) {
  const auto status = at::get_overlap_status(a, b);
  TORCH_CHECK(status != at::MemOverlapStatus::Full && status != at::MemOverlapStatus::Partial, "dopfast.", op, ": ",
              a_name, " and ", b_name, " share memory; an argument updated in place must not alias another");
}

inline void check_no_internal_overlap(const at::Tensor& t, std::string_view op, std::string_view name) {
  TORCH_CHECK(at::has_internal_overlap(t) != at::MemOverlap::Yes, "dopfast.", op, ": ", name,
              " has overlapping elements (e.g. an expanded view) and cannot be updated in place");
}

}  // namespace dopfast
