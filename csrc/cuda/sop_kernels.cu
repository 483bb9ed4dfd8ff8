// CUDA SOP loss step: one warp per sample (lanes stride over the classes), the same maths as
// csrc/cpu/kernels/sop.h; per-sample losses are summed by a second one-block kernel in a fixed order.
#include "cuda/device_utils.cuh"
#include "cuda/launchers.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

namespace dopfast::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;

template <typename T>
struct Arith {
  using type = float;
};
template <>
struct Arith<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T, typename A>
__device__ __forceinline__ T from_acc(A x) {
  return static_cast<T>(x);
}
template <>
__device__ __forceinline__ __half from_acc<__half, float>(float x) {
  return __float2half(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float x) {
  return __float2bfloat16(x);
}

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(float x) { return logf(x); }
__device__ __forceinline__ double dlog(double x) { return log(x); }

// Clamps that let NaN through (as torch.clamp and the CPU kernel's scalar code do; fmin/fmax would drop it).
template <typename A>
__device__ __forceinline__ A at_least(A x, A lo) {
  return x < lo ? lo : x;
}
template <typename A>
__device__ __forceinline__ A at_most(A x, A hi) {
  return x > hi ? hi : x;
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename LT, typename S>
__global__ void __launch_bounds__(kThreads)
    sop_step_kernel(const LT* __restrict__ logits, const int64_t* __restrict__ targets,
                    const int64_t* __restrict__ index, S* __restrict__ u, int64_t u_cols, S* __restrict__ v,
                    LT* __restrict__ grad, double* __restrict__ sample_loss, int64_t B, int64_t K, double lr_u,
                    double lr_v, bool paper) {
  using A = typename Arith<LT>::type;
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (i >= B) return;  // whole warps exit together
  const LT* z = logits + i * K;
  LT* gz = grad + i * K;
  const int64_t c = targets[i], row = index[i];
  S* urow = u + row * u_cols;
  S* vrow = v + row * K;
  const A eps = A(1e-4), inv_b = A(1) / static_cast<A>(B);

  // max and first argmax
  A zmax = -INFINITY;
  int64_t amax = 0;  // all -inf or NaN logits: class 0, as torch.argmax and the CPU kernel
  for (int64_t k = lane; k < K; k += 32) {
    const A x = to_acc(z[k]);
    if (x > zmax) {
      zmax = x;
      amax = k;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const A om = __shfl_xor_sync(0xffffffffu, zmax, off);
    const int64_t oa = __shfl_xor_sync(0xffffffffu, amax, off);
    if (om > zmax || (om == zmax && oa < amax)) {
      zmax = om;
      amax = oa;
    }
  }
  A esum = 0;
  for (int64_t k = lane; k < K; k += 32) esum += dexp(to_acc(z[k]) - zmax);
  const A inv_esum = A(1) / warp_sum(esum);

  const A uc = static_cast<A>(paper ? urow[c] : urow[0]);
  const A a_c = paper ? uc * uc : at_most(uc * uc, A(1));
  auto b_of = [&](int64_t k) -> A {
    if (k == c) return A(0);
    const A vk = static_cast<A>(vrow[k]);
    return paper ? vk * vk : at_most(vk * vk, A(1));
  };
  A s_part = 0;
  for (int64_t k = lane; k < K; k += 32) {
    const A w = dexp(to_acc(z[k]) - zmax) * inv_esum + (k == c ? a_c : A(0)) - b_of(k);
    s_part += at_least(w, eps);
  }
  const A s_sum = warp_sum(s_part);
  const A w_c = dexp(to_acc(z[c]) - zmax) * inv_esum + a_c;
  const A q_c = at_least(w_c, eps);
  const A ratio = q_c / s_sum;
  A ce, kappa = 1;
  if (paper) {
    ce = -dlog(ratio);
  } else {
    ce = -dlog(at_most(at_least(ratio, eps), A(1)));
    kappa = (ratio > eps && ratio < A(1)) ? A(1) : A(0);  // open interval: torch.clamp's gradient
  }
  const A inv_s = A(1) / s_sum;
  const A g_c = (w_c > eps ? kappa : A(0)) * (inv_s - A(1) / q_c);

  A dot = 0, mse = 0;
  for (int64_t k = lane; k < K; k += 32) {
    const A p = dexp(to_acc(z[k]) - zmax) * inv_esum;
    const A ak = k == c ? a_c : A(0), bk = b_of(k);
    const A w = p + ak - bk;
    const A g = (w > eps ? kappa : A(0)) * (inv_s - (k == c ? A(1) / q_c : A(0)));
    dot += g * p;
    const A r = (k == amax ? A(1) : A(0)) + ak - bk - (k == c ? A(1) : A(0));
    mse += r * r;
  }
  dot = warp_sum(dot);
  mse = warp_sum(mse);
  for (int64_t k = lane; k < K; k += 32) {
    const A p = dexp(to_acc(z[k]) - zmax) * inv_esum;
    const A w = p + (k == c ? a_c : A(0)) - b_of(k);
    const A g = (w > eps ? kappa : A(0)) * (inv_s - (k == c ? A(1) / q_c : A(0)));
    gz[k] = from_acc<LT, A>(p * (g - dot) * inv_b);
  }
  if (lane == 0) sample_loss[i] = static_cast<double>(ce) + static_cast<double>(mse);
  // As the CPU kernel: no update in evaluation, nor from a row whose loss is not finite (warp-uniform values).
  if ((lr_u == 0 && lr_v == 0) || !isfinite(static_cast<double>(ce) + static_cast<double>(mse))) return;
  __syncwarp();
  // Every lane has read u and v (b_of) above; only now are they written. Steps are computed in A and applied as
  // increments in the state's own precision S (an entry without a step keeps every bit), as on the CPU.
  const A h_c = amax == c ? A(1) : A(0);
  if (lane == 0) {
    if (paper) {
      const A du = g_c * 2 * uc * inv_b;
      urow[c] = at_most(at_least(urow[c] - static_cast<S>(static_cast<A>(lr_u) * du), S(-1)), S(1));
    } else {
      const A u2 = uc * uc;
      const A du = u2 > A(0) && u2 < A(1) ? (g_c + 2 * (h_c + a_c - 1)) * 2 * uc * inv_b : A(0);
      urow[0] -= static_cast<S>(static_cast<A>(lr_u) * du);
    }
  }
  for (int64_t k = lane; k < K; k += 32) {
    const A vk = static_cast<A>(vrow[k]), v2 = vk * vk;
    const A hk = k == amax ? A(1) : A(0);
    if (paper) {  // Algorithm 1 projects whole rows on [-1, 1]
      if (k != c) urow[k] = at_most(at_least(urow[k], S(-1)), S(1));
      const A dv = k == c ? A(0) : 4 * vk * (v2 - hk) * inv_b;
      vrow[k] = at_most(at_least(vrow[k] - static_cast<S>(static_cast<A>(lr_v) * dv), S(-1)), S(1));
    } else if (k != c) {
      const A dv = v2 > A(0) && v2 < A(1) ? 4 * vk * (v2 - hk) * inv_b : A(0);
      vrow[k] -= static_cast<S>(static_cast<A>(lr_v) * dv);
    }
  }
}

template <typename LT>
__global__ void __launch_bounds__(256)
    sop_finish_kernel(const double* __restrict__ sample_loss, int64_t B, LT* __restrict__ loss) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < B; i += 256) acc += sample_loss[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0)
    *loss = static_cast<LT>(B > 0 ? acc / static_cast<double>(B) : __longlong_as_double(0x7ff8000000000000LL));
}

template <typename LT, typename S>
void launch_typed(const void* logits, const int64_t* targets, const int64_t* index, void* u, int64_t u_cols, void* v,
                  void* grad, double* sample_loss, void* loss, bool loss_double, int64_t B, int64_t K, double lr_u,
                  double lr_v, bool paper, cudaStream_t stream) {
  if (B > 0) {
    const unsigned blocks = static_cast<unsigned>((B + kWarps - 1) / kWarps);
    sop_step_kernel<LT, S><<<blocks, kThreads, 0, stream>>>(
        static_cast<const LT*>(logits), targets, index, static_cast<S*>(u), u_cols, static_cast<S*>(v),
        static_cast<LT*>(grad), sample_loss, B, K, lr_u, lr_v, paper);
    check_launch("sop_step_kernel");
  }
  if (loss_double)
    sop_finish_kernel<double><<<1, 256, 0, stream>>>(sample_loss, B, static_cast<double*>(loss));
  else
    sop_finish_kernel<float><<<1, 256, 0, stream>>>(sample_loss, B, static_cast<float*>(loss));
  check_launch("sop_finish_kernel");
}

}  // namespace

void launch_sop_step(SopDtype logits_dtype, bool state_double, const void* logits, const int64_t* targets,
                     const int64_t* index, void* u, int64_t u_cols, void* v, void* grad, double* sample_loss,
                     void* loss, int64_t B, int64_t K, double lr_u, double lr_v, bool paper, cudaStream_t stream) {
  const bool loss_double = logits_dtype == SopDtype::f64;
#define DOPFAST_SOP_CASE(LT)                                                                                         \
  if (state_double)                                                                                                  \
    launch_typed<LT, double>(logits, targets, index, u, u_cols, v, grad, sample_loss, loss, loss_double, B, K, lr_u, \
                             lr_v, paper, stream);                                                                   \
  else                                                                                                               \
    launch_typed<LT, float>(logits, targets, index, u, u_cols, v, grad, sample_loss, loss, loss_double, B, K, lr_u,  \
                            lr_v, paper, stream);
  switch (logits_dtype) {
    case SopDtype::f32: DOPFAST_SOP_CASE(float) break;
    case SopDtype::f64: DOPFAST_SOP_CASE(double) break;
    case SopDtype::f16: DOPFAST_SOP_CASE(__half) break;
    case SopDtype::bf16: DOPFAST_SOP_CASE(__nv_bfloat16) break;
  }
#undef DOPFAST_SOP_CASE
}

}  // namespace dopfast::cuda
