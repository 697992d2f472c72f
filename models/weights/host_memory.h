// Host (CPU) memory for model weights. On the VMs this tool runs on, first touching a fresh 4 KiB
// page costs ~10-20 µs, so filling 600 MB of weights page by page costs seconds; memory advised for
// transparent huge pages (2 MiB) faults 512x less often. docs/PERFORMANCE.md has the figures.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace clipshard {

// An owned, uninitialised byte buffer. Buffers of 2 MiB or more are 2 MiB-aligned and advised for
// transparent huge pages (madvise(MADV_HUGEPAGE); a no-op where the kernel lacks it).
class HostBuffer {
 public:
  // Throws std::bad_alloc when the memory cannot be had.
  explicit HostBuffer(size_t size);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads the whole of `file` into a new HostBuffer (pread: the kernel copies from the page cache,
// no mmap faults). Throws CheckpointError naming the file when it cannot be opened, is not a
// regular file, or a read fails or comes up short.
std::shared_ptr<HostBuffer> read_file_to_host_buffer(const std::filesystem::path& file);

// A CPU tensor of `dtype` viewing `buffer` at byte `offset` (shape `sizes`, contiguous). The tensor
// keeps the buffer alive. The caller has checked that the bytes are inside the buffer; `offset`
// must be a multiple of the element size.
at::Tensor host_tensor_view(const std::shared_ptr<HostBuffer>& buffer, size_t offset,
                            at::IntArrayRef sizes, at::ScalarType dtype);

// at::empty on the CPU, from a HostBuffer when the tensor is 2 MiB or larger.
at::Tensor host_empty(at::IntArrayRef sizes, at::ScalarType dtype);

// `t` as a contiguous float32 CPU tensor: `t` itself when it already is one, else a copy into
// host_empty memory.
at::Tensor host_contiguous_float(const at::Tensor& t);

}  // namespace clipshard
