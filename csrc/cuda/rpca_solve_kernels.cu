// Whole-loop DOP solver on the GPU: one thread block runs every step of one problem, with the factors and
// the residual in shared memory, so a step costs a few block barriers instead of a dozen kernel launches.
// The maths is that of csrc/cpu/kernels/rpca.h (same transposed state, same stopping rule):
//   X = Ut^T Ut (or Ut^T Vt);  R = X + g*g - h*h - y, g -= a*tau*R*g, h += a*tau*R*h   (fused epilogue)
//   U U^T: Ut' = Ut - tau Ut Rs, Rs = (R + R^T)/2;   U V^T: Ut' = Ut - tau Vt R^T, Vt' = Vt - tau Ut R.
#include "cuda/device_utils.cuh"
#include "cuda/launchers.h"
#include "rpca_stopping.h"

#include <algorithm>
#include <mutex>

#include <limits>

namespace dopfast::cuda {
namespace {

constexpr int kSolverThreads = 256;
constexpr int kTM = 4, kTN = 4;  // register tile of each thread in the block products

template <typename T>
struct SolverArgs {
  bool sym;  // U U^T (m == n) or U V^T: explicit, never read from v's pointer (an empty v has none)
  int m, n, k;
  const T* y;
  const bool* mask;  // null: every entry observed
  T *u, *v, *g, *h;
  T tau, ga;
  double tol;
  int64_t iters;
  T* losses;
  int64_t* n_iter;
};

// C (M x N) = A (M x K) B (K x N) over shared-memory operands; calls epi(i, j, c_ij) once per entry.
// A(i, p) = A[i * a_rs + p * a_cs], B(p, j) = B[p * ldb + j]. A thread owns rows ti + a*TI and columns
// tj + c*TJ, so a warp reads consecutive columns of B (no bank conflicts) and nearly one address of A.
template <typename T, typename Epi>
__device__ __forceinline__ void block_gemm(int M, int N, int K, const T* A, int a_rs, int a_cs, const T* B, int ldb,
                                           Epi& epi) {
  const int TI = (M + kTM - 1) / kTM, TJ = (N + kTN - 1) / kTN;
  for (int t = threadIdx.x; t < TI * TJ; t += blockDim.x) {
    const int ti = t / TJ, tj = t % TJ;
    T acc[kTM][kTN];
#pragma unroll
    for (int a = 0; a < kTM; ++a)
#pragma unroll
      for (int c = 0; c < kTN; ++c) acc[a][c] = T(0);
    for (int p = 0; p < K; ++p) {
      T av[kTM], bv[kTN];
#pragma unroll
      for (int a = 0; a < kTM; ++a) {
        const int i = ti + a * TI;
        av[a] = i < M ? A[i * a_rs + p * a_cs] : T(0);
      }
#pragma unroll
      for (int c = 0; c < kTN; ++c) {
        const int j = tj + c * TJ;
        bv[c] = j < N ? B[p * ldb + j] : T(0);
      }
#pragma unroll
      for (int a = 0; a < kTM; ++a)
#pragma unroll
        for (int c = 0; c < kTN; ++c) acc[a][c] += av[a] * bv[c];
    }
#pragma unroll
    for (int a = 0; a < kTM; ++a)
#pragma unroll
      for (int c = 0; c < kTN; ++c) {
        const int i = ti + a * TI, j = tj + c * TJ;
        if (i < M && j < N) epi(i, j, acc[a][c]);
      }
  }
}

// Running sums of one thread, reduced over the block once per step.
struct StepSums {
  double loss = 0, step_sq = 0, theta_sq = 0;
};

template <typename T>
struct ResidualEpilogue {
  const T* y;
  const bool* mask;   // where false, r = 0 (g, h keep their values; y is not read)
  T *g, *h, *R, *RT;  // RT (n x m) only for U V^T
  int m, n;
  T ga;
  StepSums& sums;
  __device__ __forceinline__ void operator()(int i, int j, T x) {
    const int e = i * n + j;
    const T gi = g[e], hi = h[e];
    const T r = (!mask || mask[e]) ? x + gi * gi - hi * hi - y[e] : T(0);
    const T dg = ga * r * gi, dh = ga * r * hi;
    g[e] = gi - dg;
    h[e] = hi + dh;
    R[e] = r;
    if (RT) RT[j * m + i] = r;
    sums.loss += static_cast<double>(r) * r;
    sums.step_sq += static_cast<double>(dg) * dg + static_cast<double>(dh) * dh;
    sums.theta_sq += static_cast<double>(gi) * gi + static_cast<double>(hi) * hi;
  }
};

template <typename T>
struct FactorEpilogue {  // next[p, i] = cur[p, i] - tau * c
  const T* cur;
  T* next;
  int ld;
  T tau;
  StepSums& sums;
  __device__ __forceinline__ void operator()(int p, int i, T c) {
    const T old = cur[p * ld + i], d = tau * c;
    next[p * ld + i] = old - d;
    sums.step_sq += static_cast<double>(d) * d;
    sums.theta_sq += static_cast<double>(old) * old;
  }
};

__device__ __forceinline__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Reduces the three sums over the block into thread 0 (two barriers).
__device__ __forceinline__ StepSums block_sums(StepSums s, double (*scratch)[32]) {
  s.loss = warp_sum(s.loss);
  s.step_sq = warp_sum(s.step_sq);
  s.theta_sq = warp_sum(s.theta_sq);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) {
    scratch[0][warp] = s.loss;
    scratch[1][warp] = s.step_sq;
    scratch[2][warp] = s.theta_sq;
  }
  __syncthreads();
  StepSums out;
  if (warp == 0) {
    out.loss = warp_sum(lane < warps ? scratch[0][lane] : 0.0);
    out.step_sq = warp_sum(lane < warps ? scratch[1][lane] : 0.0);
    out.theta_sq = warp_sum(lane < warps ? scratch[2][lane] : 0.0);
  }
  return out;
}

template <typename T>
__global__ void __launch_bounds__(kSolverThreads) rpca_solve_kernel(SolverArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ double scratch[3][32];
  __shared__ int stop;
  const int m = a.m, n = a.n, k = a.k;
  const bool sym = a.sym;
  const int64_t b = blockIdx.x;
  const T* y = a.y + b * m * n;
  const bool* mask = a.mask ? a.mask + b * m * n : nullptr;
  T* g = a.g + b * m * n;
  T* h = a.h + b * m * n;
  T* u = a.u + b * m * k;
  T* v = sym ? nullptr : a.v + b * n * k;
  T* losses = a.losses + b * a.iters;

  T* smem = reinterpret_cast<T*>(smem_raw);
  T* ut = smem;             // k x m
  T* ut_next = ut + k * m;  // k x m
  T* R = ut_next + k * m;   // m x n
  T* vt = nullptr;
  T* vt_next = nullptr;
  T* RT = nullptr;
  if (!sym) {
    vt = R + m * n;        // k x n
    vt_next = vt + k * n;  // k x n
    RT = vt_next + k * n;  // n x m
  }
  for (int e = threadIdx.x; e < m * k; e += blockDim.x) ut[(e % k) * m + e / k] = u[e];
  if (!sym)
    for (int e = threadIdx.x; e < n * k; e += blockDim.x) vt[(e % k) * n + e / k] = v[e];
  if (threadIdx.x == 0) stop = 0;
  __syncthreads();

  double prev_loss = 0;  // meaningful in thread 0 only
  int64_t it = 0;
  while (it < a.iters) {
    StepSums sums;
    ResidualEpilogue<T> res{y, mask, g, h, R, RT, m, n, a.ga, sums};
    if (sym)
      block_gemm(m, n, k, ut, 1, m, ut, m, res);
    else
      block_gemm(m, n, k, ut, 1, m, vt, n, res);
    __syncthreads();
    if (sym) {
      for (int e = threadIdx.x; e < m * n; e += blockDim.x) {
        const int i = e / n, j = e % n;
        if (i < j) {
          const T s = T(0.5) * (R[i * n + j] + R[j * n + i]);
          R[i * n + j] = s;
          R[j * n + i] = s;
        }
      }
      __syncthreads();
      FactorEpilogue<T> upd{ut, ut_next, m, a.tau, sums};
      block_gemm(k, m, m, ut, m, 1, R, n, upd);
    } else {
      FactorEpilogue<T> upd_u{ut, ut_next, m, a.tau, sums};
      block_gemm(k, m, n, vt, n, 1, RT, m, upd_u);
      FactorEpilogue<T> upd_v{vt, vt_next, n, a.tau, sums};
      block_gemm(k, n, m, ut, m, 1, R, n, upd_v);
    }
    const StepSums total = block_sums(sums, scratch);
    if (threadIdx.x == 0) {
      // stop: 0 go on, 1 converged (keep this step), 2 non-finite loss (g, h took the step, U, V do not).
      const double loss = rpca_loss<T>(total.loss);
      losses[it] = static_cast<T>(loss);
      int code = 0;
      if (!rpca_loss_finite<T>(total.loss))
        code = 2;
      else if (it > 0 && a.tol > 0 && rpca_converged(prev_loss, loss, total.step_sq, total.theta_sq, a.tol))
        code = 1;
      prev_loss = loss;
      stop = code;
    }
    __syncthreads();
    const int code = stop;
    ++it;
    if (code == 2) break;  // the new factors in ut_next / vt_next are discarded
    T* t = ut;
    ut = ut_next;
    ut_next = t;
    if (!sym) {
      t = vt;
      vt = vt_next;
      vt_next = t;
    }
    if (code == 1) break;
  }
  for (int e = threadIdx.x; e < m * k; e += blockDim.x) u[e] = ut[(e % k) * m + e / k];
  if (!sym)
    for (int e = threadIdx.x; e < n * k; e += blockDim.x) v[e] = vt[(e % k) * n + e / k];
  for (int64_t j = it + threadIdx.x; j < a.iters; j += blockDim.x)
    losses[j] = static_cast<T>(__longlong_as_double(0x7ff8000000000000LL));
  if (threadIdx.x == 0) a.n_iter[b] = it;
}

// The dynamic shared memory one block may use on the current device: the opt-in maximum less the kernel's
// static shared memory. The kernel's limit is raised to that once per device (not per call: setting the
// attribute from several host threads at once would race).
template <typename T>
int64_t solver_dynamic_smem_limit() {
  return once_per_device(int64_t{0}, [](int dev) -> int64_t {
    int optin = 0;
    cudaFuncAttributes attr{};
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaFuncGetAttributes(&attr, rpca_solve_kernel<T>) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    const int64_t room = static_cast<int64_t>(optin) - static_cast<int64_t>(attr.sharedSizeBytes);
    const bool raised =
        room > 0 && cudaFuncSetAttribute(rpca_solve_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(room)) == cudaSuccess;
    if (!raised) cudaGetLastError();
    // Without the raise, the default 48 KiB window (less the static part) is what a launch may use.
    return raised ? room : std::max<int64_t>(0, 48 * 1024 - static_cast<int64_t>(attr.sharedSizeBytes));
  });
}

}  // namespace

template <typename T>
bool launch_rpca_solve(bool sym, int64_t batch, int64_t m, int64_t n, int64_t k, const T* y, const bool* mask, T* u,
                       T* v, T* g, T* h, double tau, double alpha, int64_t iters, double tol, T* losses,
                       int64_t* n_iter, cudaStream_t stream) {
  if (sym && m != n) return false;
  const int64_t words = sym ? 2 * k * m + m * n : 2 * k * m + 2 * k * n + 2 * m * n;
  const int64_t bytes = words * static_cast<int64_t>(sizeof(T));
  if (bytes > solver_dynamic_smem_limit<T>() || batch > std::numeric_limits<int>::max()) return false;
  if (batch == 0) return true;
  SolverArgs<T> a{sym,
                  static_cast<int>(m),
                  static_cast<int>(n),
                  static_cast<int>(k),
                  y,
                  mask,
                  u,
                  v,
                  g,
                  h,
                  static_cast<T>(tau),
                  static_cast<T>(alpha * tau),
                  tol,
                  iters,
                  losses,
                  n_iter};
  rpca_solve_kernel<T><<<static_cast<unsigned>(batch), kSolverThreads, static_cast<size_t>(bytes), stream>>>(a);
  check_launch("rpca_solve_kernel");
  return true;
}

template bool launch_rpca_solve<float>(bool, int64_t, int64_t, int64_t, int64_t, const float*, const bool*, float*,
                                       float*, float*, float*, double, double, int64_t, double, float*, int64_t*,
                                       cudaStream_t);
template bool launch_rpca_solve<double>(bool, int64_t, int64_t, int64_t, int64_t, const double*, const bool*, double*,
                                        double*, double*, double*, double, double, int64_t, double, double*, int64_t*,
                                        cudaStream_t);

}  // namespace dopfast::cuda
