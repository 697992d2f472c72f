#include "models/weights/host_memory.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Closes a file descriptor on every path out.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

HostBuffer::HostBuffer(size_t size) : size_(size) {
  if (size < kHugePage) {
    data_ = static_cast<uint8_t*>(std::malloc(std::max<size_t>(size, 1)));
    if (data_ == nullptr) throw std::bad_alloc();
    return;
  }
  const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, rounded));
  if (data_ == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  (void)::madvise(data_, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
}

HostBuffer::~HostBuffer() { std::free(data_); }

std::shared_ptr<HostBuffer> read_file_to_host_buffer(const std::filesystem::path& file) {
  FileDescriptor f;
  f.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    throw CheckpointError("cannot open checkpoint " + file.string() + ": " + std::strerror(errno) +
                          " (check the path and its permissions)");
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    throw CheckpointError("checkpoint " + file.string() + " is not a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  auto buffer = std::make_shared<HostBuffer>(size);
  size_t done = 0;
  while (done < size) {
    const size_t chunk = std::min<size_t>(size - done, size_t{64} << 20);
    const ssize_t n = ::pread(f.fd, buffer->data() + done, chunk, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw CheckpointError("cannot read checkpoint " + file.string() + " at byte " +
                            std::to_string(done) + " of " + std::to_string(size) + ": " +
                            (n < 0 ? std::strerror(errno) : "the file shrank while being read"));
    }
    done += static_cast<size_t>(n);
  }
  return buffer;
}

at::Tensor host_tensor_view(const std::shared_ptr<HostBuffer>& buffer, size_t offset,
                            at::IntArrayRef sizes, at::ScalarType dtype) {
  std::shared_ptr<HostBuffer> keep = buffer;
  return at::from_blob(
      buffer->data() + offset, sizes, [keep](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(dtype).device(at::kCPU));
}

at::Tensor host_empty(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < kHugePage) return at::empty(sizes, at::TensorOptions().dtype(dtype));
  return host_tensor_view(std::make_shared<HostBuffer>(bytes), 0, sizes, dtype);
}

at::Tensor host_contiguous_float(const at::Tensor& t) {
  if (t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()) return t;
  at::Tensor out = host_empty(t.sizes(), at::kFloat);
  out.copy_(t);
  return out;
}

}  // namespace clipshard
