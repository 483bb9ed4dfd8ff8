// The stopping rule of the whole-loop DOP solvers, written once for the CPU kernels, the CUDA kernel (host and
// device) and the ATen loop (on tensors): stop after a step whose relative loss change AND relative step
// ||d theta|| / ||theta|| are both <= tol (tol = 0: never). dopfast/reference.py is its Python twin.
// A step whose loss is not finite in the problem's own precision ends the loop (after g, h took that step,
// before U, V do).
#pragma once

#include <cfloat>
#include <cmath>

#if defined(__CUDACC__)
#define DOPFAST_HOST_DEVICE __host__ __device__
#else
#define DOPFAST_HOST_DEVICE
#endif

namespace dopfast {

// Scalar building blocks of the rule; the ATen loop declares tensor overloads of the same names before it
// includes this header.
DOPFAST_HOST_DEVICE inline double stop_abs(double x) { return fabs(x); }
DOPFAST_HOST_DEVICE inline double stop_sqrt(double x) { return sqrt(x); }
DOPFAST_HOST_DEVICE inline double stop_floor(double x) { return x > DBL_MIN ? x : DBL_MIN; }  // max(x, tiny)
DOPFAST_HOST_DEVICE inline bool stop_and(bool a, bool b) { return a && b; }

// prev_loss, loss: 1/4 ||R||^2 before the previous and this step; step_sq, theta_sq: ||d theta||^2 and
// ||theta||^2 of this step (theta = U, V, g, h before the step). Valid from the second step on.
template <typename S>
DOPFAST_HOST_DEVICE auto rpca_converged(const S& prev_loss, const S& loss, const S& step_sq, const S& theta_sq,
                                        double tol) {
  const auto change = stop_abs(prev_loss - loss) / stop_floor(prev_loss);
  const auto step = stop_sqrt(step_sq / stop_floor(theta_sq));
  return stop_and(change <= tol, step <= tol);
}

// A step's loss 1/4 ||R||^2 from its sum of squares, as the problem's precision T sees it: a float32 sum beyond
// FLT_MAX is infinite (the reference sums in float32), even when it was accumulated in double.
template <typename T>
DOPFAST_HOST_DEVICE inline double rpca_loss(double sum_sq) {
  return 0.25 * static_cast<double>(static_cast<T>(sum_sq));
}

// Whether a step's sum of squared residuals is finite in the precision T of the problem (a float32 sum that
// overflows is infinite, even when it was accumulated in double).
template <typename T>
DOPFAST_HOST_DEVICE inline bool rpca_loss_finite(double sum_sq) {
  const double value = static_cast<double>(static_cast<T>(sum_sq));
#if defined(__CUDA_ARCH__)
  return isfinite(value);
#else
  return std::isfinite(value);
#endif
}

}  // namespace dopfast
