// The raw CPU kernels for any x86-64 / other CPU (baseline instruction set).
#define DOPFAST_SIMD_NS isa_default
#define DOPFAST_SIMD_NAME "default"
#define DOPFAST_SIMD_ACCESSOR kernels_default
#include "cpu/kernels/all.inc"
