// Argument checks shared by every op. Each message names the argument and echoes what arrived,
// so a user sees e.g. "dopfast.residual_step_: g must have the shape of x [4, 5], got [4, 6]".
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/MemoryOverlap.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <optional>
#include <utility>
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

// An optional observation mask: a dense bool tensor with the shape and device of `ref` (named `ref_name`).
inline void check_observation_mask(std::string_view op, const at::Tensor& ref, std::string_view ref_name,
                                   const std::optional<at::Tensor>& mask) {
  if (!mask) return;
  const at::Tensor& m = *mask;
  TORCH_CHECK(m.defined(), "dopfast.", op, ": mask is undefined");
  TORCH_CHECK(m.scalar_type() == at::kBool, "dopfast.", op, ": mask must be a bool tensor (true = observed), got ",
              m.scalar_type());
  TORCH_CHECK(m.layout() == at::kStrided, "dopfast.", op, ": mask must be a dense (strided) tensor, got ", m.layout());
  TORCH_CHECK(m.device() == ref.device(), "dopfast.", op, ": mask must be on the device of ", ref_name, " (",
              ref.device(), "), got ", m.device());
  TORCH_CHECK(m.sizes() == ref.sizes(), "dopfast.", op, ": mask must have the shape of ", ref_name, " ", ref.sizes(),
              ", got ", m.sizes());
}

inline void check_finite_scalar(double v, std::string_view op, std::string_view name) {
  TORCH_CHECK(std::isfinite(v), "dopfast.", op, ": ", name, " must be a finite number, got ", v);
}

// Whether a and b can share an element. at::get_overlap_status answers "too hard" for strided views; then the
// storages' address ranges decide (conservatively: interleaved views of one buffer count as sharing).
inline bool may_share_memory(const at::Tensor& a, const at::Tensor& b) {
  const auto status = at::get_overlap_status(a, b);
  if (status == at::MemOverlapStatus::Full || status == at::MemOverlapStatus::Partial) return true;
  if (status != at::MemOverlapStatus::TooHard || a.numel() == 0 || b.numel() == 0) return false;
  if (!a.has_storage() || !b.has_storage() || !a.storage().is_alias_of(b.storage())) return false;
  const auto range = [](const at::Tensor& t) {
    int64_t lo = t.storage_offset(), hi = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) (t.stride(d) < 0 ? lo : hi) += t.stride(d) * (t.size(d) - 1);
    return std::pair<int64_t, int64_t>{lo * t.element_size(), (hi + 1) * t.element_size()};
  };
  const auto [a0, a1] = range(a);
  const auto [b0, b1] = range(b);
  return a0 < b1 && b0 < a1;
}

inline void check_no_overlap(const at::Tensor& a, std::string_view a_name, const at::Tensor& b, std::string_view b_name,
                             std::string_view op) {
  TORCH_CHECK(!may_share_memory(a, b), "dopfast.", op, ": ", a_name, " and ", b_name,
              " share memory; an argument updated in place must not alias another");
}

inline void check_no_internal_overlap(const at::Tensor& t, std::string_view op, std::string_view name) {
  TORCH_CHECK(at::has_internal_overlap(t) != at::MemOverlap::Yes, "dopfast.", op, ": ", name,
              " has overlapping elements (e.g. an expanded view) and cannot be updated in place");
}

// Tells autograd that an op wrote `t` (bumps its version counter), so that a tensor saved for backward and then
// changed by a dopfast op is caught at backward instead of giving a wrong gradient. Inference tensors have no
// version counter.
inline void mark_written(const at::Tensor& t) {
  if (t.defined() && !t.is_inference()) torch::autograd::impl::bump_version(t);
}

// A tensor updated in place through a contiguous working copy: `work` aliases `target` when it is already
// contiguous, otherwise it is a copy that finish() writes back.
struct InplaceContiguous {
  at::Tensor& target;
  at::Tensor work;
  explicit InplaceContiguous(at::Tensor& t) : target(t), work(t.contiguous()) {}
  void finish() {
    if (!work.is_same(target)) target.copy_(work);
    mark_written(target);
  }
};

}  // namespace dopfast
