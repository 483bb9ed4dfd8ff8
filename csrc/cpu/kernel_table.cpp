// Picks the raw-kernel table for this CPU once. DOPFAST_SIMD=default forces the baseline build (for tests).
#include "cpu/kernel_table.h"

#include <cstdlib>
#include <cstring>

namespace dopfast::cpu {

const KernelTable<float>& kernels_default(float);
const KernelTable<double>& kernels_default(double);
#ifdef DOPFAST_HAVE_AVX2_BUILD
const KernelTable<float>& kernels_avx2(float);
const KernelTable<double>& kernels_avx2(double);
#endif

namespace {
bool use_avx2() {
#ifdef DOPFAST_HAVE_AVX2_BUILD
  static const bool yes = [] {
    const char* forced = std::getenv("DOPFAST_SIMD");
    if (forced && std::strcmp(forced, "default") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}
}  // namespace

const KernelTable<float>& kernels(float tag) {
#ifdef DOPFAST_HAVE_AVX2_BUILD
  if (use_avx2()) return kernels_avx2(tag);
#endif
  return kernels_default(tag);
}

const KernelTable<double>& kernels(double tag) {
#ifdef DOPFAST_HAVE_AVX2_BUILD
  if (use_avx2()) return kernels_avx2(tag);
#endif
  return kernels_default(tag);
}

const char* simd_isa() { return use_avx2() ? "avx2" : "default"; }

}  // namespace dopfast::cpu
