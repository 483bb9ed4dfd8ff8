// Allocation of large, freshly written outputs of CPU kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace dopfast::cpu {

// A fresh contiguous output shaped like `sizes`. Large buffers come from mmap and would be faulted in 4 KiB at
// a time (for 40 MB the faults cost more than a streaming kernel); asking for transparent huge pages on the
// buffer cuts the faults 512-fold, as torch's own THP_MEM_ALLOC_ENABLE does for every allocation.
inline at::Tensor empty_streaming(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(out.data_ptr());
  const std::uintptr_t end = begin + out.nbytes();
  const std::uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (out.nbytes() >= 4 * kHuge && last > first)
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
  return out;
}

inline at::Tensor empty_streaming_output(const at::Tensor& like) {
  return empty_streaming(like.sizes(), like.options());
}

}  // namespace dopfast::cpu
