// Picks the raw-kernel table for this CPU once: the widest instruction set built and supported.
// DOPFAST_SIMD=default|avx2 caps it (for tests, and to compare the builds).
#include "cpu/kernel_table.h"

#include <cstdlib>
#include <cstring>

namespace dopfast::cpu {

const KernelTable<float>& kernels_default(float);
const KernelTable<double>& kernels_default(double);
#ifdef DOPFAST_HAVE_X86_BUILDS
const KernelTable<float>& kernels_avx2(float);
const KernelTable<double>& kernels_avx2(double);
const KernelTable<float>& kernels_avx512(float);
const KernelTable<double>& kernels_avx512(double);
#endif

namespace {
enum class Isa { kDefault, kAvx2, kAvx512 };

Isa pick() {
#ifdef DOPFAST_HAVE_X86_BUILDS
  static const Isa isa = [] {
    const char* forced = std::getenv("DOPFAST_SIMD");
    Isa cap = Isa::kAvx512;
    if (forced && std::strcmp(forced, "default") == 0) cap = Isa::kDefault;
    if (forced && std::strcmp(forced, "avx2") == 0) cap = Isa::kAvx2;
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    if (avx512 && cap == Isa::kAvx512) return Isa::kAvx512;
    if (avx2 && cap != Isa::kDefault) return Isa::kAvx2;
    return Isa::kDefault;
  }();
  return isa;
#else
  return Isa::kDefault;
#endif
}

template <typename T>
const KernelTable<T>& table(T tag) {
#ifdef DOPFAST_HAVE_X86_BUILDS
  switch (pick()) {
    case Isa::kAvx512: return kernels_avx512(tag);
    case Isa::kAvx2: return kernels_avx2(tag);
    case Isa::kDefault: break;
  }
#endif
  return kernels_default(tag);
}
}  // namespace

const KernelTable<float>& kernels(float tag) { return table(tag); }
const KernelTable<double>& kernels(double tag) { return table(tag); }

const char* simd_isa() {
  switch (pick()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kDefault: break;
  }
  return "default";
}

}  // namespace dopfast::cpu
