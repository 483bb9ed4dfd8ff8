// Autograd for the ops that have no derivative (the in-place steps and the whole-loop solvers): torch's
// "not implemented" kernels, which bump the version counter of every argument an op writes (so a tensor saved
// for backward that an op then changes is caught at backward), refuse an in-place update of a leaf that
// requires grad, and make a backward through the op's outputs an error instead of a silent wrong gradient.
// dop_residual and dop_residual_backward are differentiable: their autograd is registered in dopfast/ops.py.
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

namespace dopfast {
namespace {
constexpr const char* kNotDifferentiable[] = {"residual_step_",   "residual_step_out_", "lowrank_step_",
                                              "lowrank_step_uv_", "rpca_dop_solve",     "rpca_dop_solve_uv",
                                              "sop_loss_step_"};
}  // namespace

TORCH_LIBRARY_IMPL(dopfast, Autograd, m) {
  for (const char* op : kNotDifferentiable) m.impl(op, torch::autograd::autogradNotImplementedFallback());
}

TORCH_LIBRARY_IMPL(dopfast, ADInplaceOrView, m) {
  for (const char* op : kNotDifferentiable) m.impl(op, torch::autograd::autogradNotImplementedInplaceOrViewFallback());
}

}  // namespace dopfast
