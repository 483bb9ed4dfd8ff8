#pragma once

#include "rpca_args.h"

namespace dopfast::cuda {

// The CUDA DOP loop for problems too large for the one-block kernel: cuBLAS products around the fused per-step
// kernels of rpca_loop_kernels.cu, chunks of steps captured in a CUDA graph, one host check per chunk. Same
// contract as rpca_aten_loop (which DOPFAST_CUDA_LOOP=aten selects instead); DOPFAST_CUDA_GRAPHS=0 launches the
// same kernels without a graph. y: (B, m, n) contiguous.
void rpca_fused_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol);

}  // namespace dopfast::cuda
