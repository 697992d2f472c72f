// Host (CPU) memory for model weights. On the VMs this tool runs on, first touching a fresh 4 KiB
// page is expensive, so filling the weights page by page costs seconds. Checkpoints are
// therefore mapped (the page cache is used in place, no copy, no zero-fill) and the tensors made
// from them are views; memory the loader must fill itself is advised for 2 MiB pages.
// docs/PERFORMANCE.md has the figures.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace clipshard {

// A block of host memory: either allocated (writable, uninitialised) or a read-only mapping of a
// whole file.
class HostBuffer {
 public:
  // Allocated memory. Blocks of 2 MiB or more are 2 MiB-aligned and advised for transparent huge
  // pages (madvise(MADV_HUGEPAGE); a no-op where the kernel lacks it). Throws std::bad_alloc.
  static std::shared_ptr<HostBuffer> allocate(size_t size);

  // The whole of `file`, mapped read-only; with `populate` the pages are mapped up front
  // (MAP_POPULATE: one system call instead of a fault per page; for readers that touch every
  // byte), without it only the pages read are faulted in. Falls back to reading into allocated
  // memory where the file cannot be mapped. Writing through data() of a mapping faults (SIGSEGV):
  // tensors viewing it are read-only. The file must not be truncated or rewritten in place while
  // mapped (replace a model file with `mv`, as package managers do). Throws CheckpointError naming
  // the file when it cannot be opened, is not a regular file, or a read fails.
  static std::shared_ptr<HostBuffer> map_file(const std::filesystem::path& file,
                                              bool populate = true);

  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }  // only for allocated buffers
  size_t size() const { return size_; }
  bool is_file_mapping() const { return mapped_; }

 private:
  HostBuffer(uint8_t* data, size_t size, bool mapped) : data_(data), size_(size), mapped_(mapped) {}
  uint8_t* data_;
  size_t size_;
  bool mapped_;
};

// A CPU tensor of `dtype` viewing `buffer` at byte `offset` (shape `sizes`, contiguous). The tensor
// keeps the buffer alive; it is read-only when the buffer is a file mapping. The caller has
// checked that the bytes are inside the buffer; `offset` must be a multiple of the element size.
at::Tensor host_tensor_view(const std::shared_ptr<HostBuffer>& buffer, size_t offset,
                            at::IntArrayRef sizes, at::ScalarType dtype);

// at::empty on the CPU, from HostBuffer::allocate when the tensor is 2 MiB or larger.
at::Tensor host_empty(at::IntArrayRef sizes, at::ScalarType dtype);

// `t` as a contiguous float32 CPU tensor: `t` itself when it already is one, else a copy into
// host_empty memory.
at::Tensor host_contiguous_float(const at::Tensor& t);

// A forward pass allocates and frees tens of MB of temporaries per layer. By default glibc hands
// such blocks back to the kernel (mmap/munmap, heap trimming), so every batch pays page faults on
// fresh memory (the cost: docs/PERFORMANCE.md, "Allocator"). After this call blocks up to 32 MiB
// (the most glibc accepts) stay in the heap for reuse, the heap is trimmed only above 1 GiB of free
// space, and threads that allocate for the first time after the call share the main arena
// (per-thread arenas drop whole 64 MiB heaps, so buffers crossing a heap edge are faulted in again
// and again: docs/PERFORMANCE.md, "One malloc arena"). Process-wide; the first call acts, later
// ones do nothing; a no-op without glibc or with CLIPSHARD_DEFAULT_MALLOC=1 (for comparisons).
// Programs call it through tune_process (process_tuning.h), the clipshard executable first thing
// in main(); library functions (load_model) do not.
void keep_freed_blocks_for_reuse();

}  // namespace clipshard
