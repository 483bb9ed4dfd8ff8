// Argument checks shared by the CPU and CUDA kernels of sop_loss_step_.
#pragma once

#include "checks.h"

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
  check_like(u, "u", v, op, "v", /*same_shape=*/false);
  TORCH_CHECK(u.device() == logits.device(), "dopfast.", op, ": u must be on the device of logits (", logits.device(),
              "), got ", u.device());
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
}

}  // namespace dopfast
