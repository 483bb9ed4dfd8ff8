#pragma once

#include "rpca_args.h"

namespace dopfast {

// The DOP loop written with ATen ops (batched matmul, elementwise): the path for problems too large for the
// whole-loop kernels, on any device. Updates out.{u, v, g, h} in place and fills out.losses / out.n_iter.
// Problems of a batch stop independently: a converged problem's updates are masked out.
void rpca_aten_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol);

}  // namespace dopfast
