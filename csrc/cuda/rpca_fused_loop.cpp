// The CUDA DOP loop for problems too large for the one-block kernel (see rpca_fused_loop.h). A step is
//   X = U V^T (cuBLAS, batched)  ->  one fused pass: R over X, g/h step, the step's sums  ->  loss kernel
//   ->  R U, R^T U (or R V, R^T U) (cuBLAS)  ->  factor pass(es)  ->  stopping rule on the device,
// all on one stream with nothing read back. Chunks of kChunk steps are captured once in a CUDA graph and
// replayed; between chunks the host reads whether any problem is still running (the only synchronisation).
// The graph is captured on a side stream (CUDA graphs cannot capture the legacy default stream) that is ordered
// after, and before, the caller's stream with events.
#include "cuda/rpca_fused_loop.h"

#include "cuda/launchers.h"
#include "cuda/rpca_aten_loop.h"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/ops/any.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/ScopeExit.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>

namespace dopfast::cuda {
namespace {

bool env_is(const char* name, const char* value) {
  const char* set = std::getenv(name);
  return set != nullptr && std::strcmp(set, value) == 0;
}

}  // namespace

void rpca_fused_loop(const at::Tensor& y, RpcaOutputs& out, double tau, double alpha, int64_t iters, double tol) {
  const int64_t B = y.size(0), m = y.size(1), n = y.size(2), k = out.u.size(2);
  if (B == 0 || iters == 0 || m * n == 0 || env_is("DOPFAST_CUDA_LOOP", "aten")) {
    rpca_aten_loop(y, out, tau, alpha, iters, tol);
    return;
  }
  constexpr int64_t kChunk = 16;  // steps per graph replay, and between host checks
  const bool sym = out.sym;
  const auto opts = y.options();
  const auto iopt = opts.dtype(at::kInt), dopt = opts.dtype(at::kDouble);
  at::Tensor x = at::empty({B, m, n}, opts);  // X, then R, of every problem
  at::Tensor gu = at::empty({B, m, k}, opts);
  at::Tensor gv = at::empty({B, n, k}, opts);
  at::Tensor active = at::ones({B}, iopt), live = at::zeros({B}, iopt);
  at::Tensor prev_loss = at::zeros({B}, dopt), loss = at::zeros({B}, dopt);
  at::Tensor res_step = at::zeros({B}, dopt), res_theta = at::zeros({B}, dopt);
  at::Tensor step = at::zeros({1}, opts.dtype(at::kLong));
  const int blocks_r = loop_blocks_per_problem(m * n, B);
  const int blocks_u = loop_blocks_per_problem(m * k, B);
  const int blocks_v = sym ? 0 : loop_blocks_per_problem(n * k, B);
  at::Tensor partial = at::zeros({B * blocks_r * 3}, dopt);
  at::Tensor partial_u = at::zeros({B * blocks_u * 2}, dopt);
  at::Tensor partial_v = at::zeros({std::max<int64_t>(B * blocks_v * 2, 1)}, dopt);
  out.losses.fill_(std::numeric_limits<double>::quiet_NaN());
  const bool* mask = out.mask.defined() ? out.mask.const_data_ptr<bool>() : nullptr;

  const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream();
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, y.device().index());
  at::cuda::CUDAEvent ready;
  ready.record(caller);
  ready.block(side);
  // The caller's stream waits for the side stream however this ends (an exception included): the buffers above
  // belong to the caller's stream and go back to its pool on return.
  at::cuda::CUDAEvent finished;
  const auto rejoin = c10::make_scope_exit([&] {
    finished.record(side);
    finished.block(caller);
  });
  {
    const c10::cuda::CUDAStreamGuard on_side(side);
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "dopfast_rpca_fused_loop", [&] {
      const auto t = static_cast<scalar_t>(tau), ga = static_cast<scalar_t>(alpha * tau);
      scalar_t* u = out.u.mutable_data_ptr<scalar_t>();
      scalar_t* v = sym ? nullptr : out.v.mutable_data_ptr<scalar_t>();
      const cudaStream_t stream = side.stream();
      auto one_step = [&] {
        at::bmm_out(x, out.u, sym ? out.u.mT() : out.v.mT());
        launch_loop_residual<scalar_t>(y.const_data_ptr<scalar_t>(), mask, x.mutable_data_ptr<scalar_t>(),
                                       out.g.mutable_data_ptr<scalar_t>(), out.h.mutable_data_ptr<scalar_t>(), B, m * n,
                                       ga, blocks_r, active.const_data_ptr<int>(), partial.mutable_data_ptr<double>(),
                                       stream);
        launch_loop_loss<scalar_t>(
            B, blocks_r, partial.const_data_ptr<double>(), active.const_data_ptr<int>(), live.mutable_data_ptr<int>(),
            loss.mutable_data_ptr<double>(), res_step.mutable_data_ptr<double>(), res_theta.mutable_data_ptr<double>(),
            out.losses.mutable_data_ptr<scalar_t>(), iters, step.const_data_ptr<int64_t>(), stream);
        // Both gradients from the factors before the step. U U^T: (R + R^T)/2 U = (R U + R^T U)/2.
        at::bmm_out(gu, x, sym ? out.u : out.v);
        at::bmm_out(gv, x.mT(), out.u);
        if (sym) {
          launch_loop_factor<scalar_t>(u, gu.const_data_ptr<scalar_t>(), gv.const_data_ptr<scalar_t>(), B, m * k,
                                       static_cast<scalar_t>(0.5 * tau), blocks_u, live.const_data_ptr<int>(),
                                       partial_u.mutable_data_ptr<double>(), stream);
        } else {
          launch_loop_factor<scalar_t>(u, gu.const_data_ptr<scalar_t>(), nullptr, B, m * k, t, blocks_u,
                                       live.const_data_ptr<int>(), partial_u.mutable_data_ptr<double>(), stream);
          launch_loop_factor<scalar_t>(v, gv.const_data_ptr<scalar_t>(), nullptr, B, n * k, t, blocks_v,
                                       live.const_data_ptr<int>(), partial_v.mutable_data_ptr<double>(), stream);
        }
        launch_loop_finish(
            B, blocks_u, partial_u.const_data_ptr<double>(), blocks_v, partial_v.const_data_ptr<double>(),
            active.mutable_data_ptr<int>(), live.const_data_ptr<int>(), prev_loss.mutable_data_ptr<double>(),
            loss.const_data_ptr<double>(), res_step.const_data_ptr<double>(), res_theta.const_data_ptr<double>(),
            out.n_iter.mutable_data_ptr<int64_t>(), step.mutable_data_ptr<int64_t>(), tol, stream);
      };
      int64_t done = 0;
      bool more = true;
      auto look = [&] {  // the host's one look per chunk (none after the last)
        if (done < iters) more = active.any().item<bool>();
      };
      auto plain_chunk = [&] {  // up to kChunk steps launched one by one
        const int64_t count = std::min(kChunk, iters - done);
        for (int64_t s = 0; s < count; ++s) one_step();
        done += count;
        look();
      };
      // The first chunk runs plainly: it creates the cuBLAS handle and loads the kernels outside any capture.
      plain_chunk();
      if (more && iters - done >= 2 * kChunk && !env_is("DOPFAST_CUDA_GRAPHS", "0")) {
        at::cuda::CUDAGraph graph;
        bool captured = false;
        try {
          // Thread-local mode: other threads' CUDA calls neither break this capture nor get caught in it.
          graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
          for (int64_t s = 0; s < kChunk; ++s) one_step();  // recorded, not run
          graph.capture_end();
          captured = true;
        } catch (const std::exception&) {
          // Capture refused: close it through the graph (which also clears the allocator's capture state) and run
          // the same kernels without a graph below. Nothing ran while capturing, so the state is untouched.
          cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
          if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
            try {
              graph.capture_end();
            } catch (const std::exception&) {
            }
          }
          cudaGetLastError();
        }
        while (captured && more && done + kChunk <= iters) {
          graph.replay();
          done += kChunk;
          look();
        }
        side.synchronize();  // the graph's memory goes back to the allocator with it
      }
      while (more && done < iters) plain_chunk();
    });
  }
}

}  // namespace dopfast::cuda
