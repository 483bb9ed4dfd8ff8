// The raw CPU kernels compiled with AVX-512 (F, VL, DQ, BW) and FMA (see CMakeLists.txt); used only where the CPU
// has all of them.
#define DOPFAST_SIMD_NS isa_avx512
#define DOPFAST_SIMD_NAME "avx512"
#define DOPFAST_SIMD_ACCESSOR kernels_avx512
#include "cpu/kernels/all.inc"
