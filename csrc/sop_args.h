// Argument checks shared by the CPU and CUDA kernels of sop_loss_step_.
#pragma once

#include "checks.h"

#include <ATen/ops/_to_copy.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace dopfast {

inline void check_sop_args(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& index,
                           const at::Tensor& u, const at::Tensor& v, double lr_u, double lr_v, bool paper) {
  constexpr std::string_view op = "sop_loss_step_";
  TORCH_CHECK(logits.is_floating_point() && logits.layout() == at::kStrided, "dopfast.", op,
              ": logits must be a dense floating-point tensor, got ", logits.scalar_type());
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) >= 2, "dopfast.", op,
              ": logits must have shape (batch, classes) with classes >= 2, got ", logits.sizes());
  const int64_t B = logits.size(0), K = logits.size(1);
  for (const auto& [t, name] : {std::pair{&targets, "targets"}, {&index, "index"}}) {
    TORCH_CHECK(t->scalar_type() == at::kLong, "dopfast.", op, ": ", name, " must be an int64 tensor, got ",
                t->scalar_type());
    TORCH_CHECK(t->dim() == 1 && t->size(0) == B, "dopfast.", op, ": ", name, " must have shape (", B,
                ",) to match logits ", logits.sizes(), ", got ", t->sizes());
    TORCH_CHECK(t->device() == logits.device(), "dopfast.", op, ": ", name, " must be on the device of logits (",
                logits.device(), "), got ", t->device());
  }
  TORCH_CHECK(u.scalar_type() == at::kFloat || u.scalar_type() == at::kDouble, "dopfast.", op,
              ": u must be float32 or float64 (kept in full precision whatever the logits' dtype), got ",
              u.scalar_type());
  TORCH_CHECK(u.device() == logits.device(), "dopfast.", op, ": u must be on the device of logits (", logits.device(),
              "), got ", u.device());
  check_like(u, "u", v, op, "v", /*same_shape=*/false);
  TORCH_CHECK(v.dim() == 2 && v.size(1) == K, "dopfast.", op, ": v must have shape (num_samples, ", K, "), got ",
              v.sizes());
  const int64_t ucols = paper ? K : 1;
  TORCH_CHECK(u.dim() == 2 && u.size(0) == v.size(0) && u.size(1) == ucols, "dopfast.", op, ": u must have shape (",
              v.size(0), ", ", ucols, ") for the ", paper ? "paper" : "official", " variant, got ", u.sizes());
  check_finite_scalar(lr_u, op, "lr_u");
  check_finite_scalar(lr_v, op, "lr_v");
  check_no_internal_overlap(u, op, "u");
  check_no_internal_overlap(v, op, "v");
  check_no_overlap(u, "u", v, "v", op);
  check_no_overlap(logits, "logits", u, "u", op);  // u, v are written while the logits are read
  check_no_overlap(logits, "logits", v, "v", op);
}

// The index contract, checked on the host (CUDA tensors are copied: B int64 values each): targets in
// [0, classes), index in [0, samples) and unique within the batch (two updates of one u, v row would race).
inline void check_sop_indices(const at::Tensor& targets, const at::Tensor& index, int64_t classes, int64_t samples) {
  const at::Tensor t = targets.to(at::kCPU).contiguous(), ix = index.to(at::kCPU).contiguous();
  const int64_t* tp = t.const_data_ptr<int64_t>();
  const int64_t* ip = ix.const_data_ptr<int64_t>();
  const int64_t B = t.numel();
  for (int64_t i = 0; i < B; ++i) {
    TORCH_CHECK(tp[i] >= 0 && tp[i] < classes, "dopfast.sop_loss_step_: targets must be class indices in [0, ", classes,
                "), got ", tp[i], " at position ", i);
    TORCH_CHECK(ip[i] >= 0 && ip[i] < samples, "dopfast.sop_loss_step_: index must be sample indices in [0, ", samples,
                "), got ", ip[i], " at position ", i);
  }
  // Uniqueness: one bit per sample (O(B + N / 64)) while the bitmap is small against the batch, else a sort.
  const auto repeated = [](int64_t value) {
    TORCH_CHECK(false, "dopfast.sop_loss_step_: index must be unique within a batch (each sample's u, v row is ",
                "updated once), but ", value, " appears more than once");
  };
  if (samples <= 1024 * B) {
    std::vector<uint64_t> seen(static_cast<size_t>((samples + 63) / 64), 0);
    for (int64_t i = 0; i < B; ++i) {
      uint64_t& word = seen[static_cast<size_t>(ip[i] >> 6)];
      const uint64_t bit = uint64_t(1) << (ip[i] & 63);
      if (word & bit) repeated(ip[i]);
      word |= bit;
    }
  } else {
    std::vector<int64_t> sorted(ip, ip + B);
    std::sort(sorted.begin(), sorted.end());
    const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end()) repeated(*dup);
  }
}

}  // namespace dopfast
