#pragma once

#include "rpca_args.h"

namespace dopfast {

// The DOP loop written with ATen ops (batched matmul, elementwise), on any device: on CUDA the reference for the
// fused loop (rpca_fused_loop.h), which hands it empty problems and DOPFAST_CUDA_LOOP=aten runs. Updates
// out.{u, v, g, h} in place and fills out.losses / out.n_iter.
// Problems of a batch stop independently: a converged problem's updates are masked out.
void rpca_aten_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol);

}  // namespace dopfast
