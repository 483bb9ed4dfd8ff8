// The raw CPU kernels compiled with -mavx2 -mfma (see CMakeLists.txt); used only where the CPU has both.
#define DOPFAST_SIMD_NS isa_avx2
#define DOPFAST_SIMD_NAME "avx2"
#define DOPFAST_SIMD_ACCESSOR kernels_avx2
#include "cpu/kernels/all.inc"
