#include "models/weights/host_memory.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
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

void read_exactly(int fd, uint8_t* out, size_t size, const std::filesystem::path& file) {
  size_t done = 0;
  while (done < size) {
    const size_t chunk = std::min<size_t>(size - done, size_t{64} << 20);
    const ssize_t n = ::pread(fd, out + done, chunk, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw CheckpointError("cannot read checkpoint " + file.string() + " at byte " +
                            std::to_string(done) + " of " + std::to_string(size) + ": " +
                            (n < 0 ? std::strerror(errno) : "the file shrank while being read"));
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace

std::shared_ptr<HostBuffer> HostBuffer::allocate(size_t size) {
  uint8_t* data = nullptr;
  if (size < kHugePage) {
    data = static_cast<uint8_t*>(std::malloc(std::max<size_t>(size, 1)));
  } else {
    const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
    data = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, rounded));
#ifdef MADV_HUGEPAGE
    if (data != nullptr) (void)::madvise(data, rounded, MADV_HUGEPAGE);  // advice only
#endif
  }
  if (data == nullptr) throw std::bad_alloc();
  return std::shared_ptr<HostBuffer>(new HostBuffer(data, size, /*mapped=*/false));
}

std::shared_ptr<HostBuffer> HostBuffer::map_file(const std::filesystem::path& file, bool populate) {
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
  if (size > 0) {
    void* p =
        ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), f.fd, 0);
    if (p != MAP_FAILED) {
      return std::shared_ptr<HostBuffer>(
          new HostBuffer(static_cast<uint8_t*>(p), size, /*mapped=*/true));
    }
  }
  auto buffer = allocate(size);
  read_exactly(f.fd, buffer->mutable_data(), size, file);
  return buffer;
}

HostBuffer::~HostBuffer() {
  if (mapped_) {
    ::munmap(data_, size_);
  } else {
    std::free(data_);
  }
}

at::Tensor host_tensor_view(const std::shared_ptr<HostBuffer>& buffer, size_t offset,
                            at::IntArrayRef sizes, at::ScalarType dtype) {
  std::shared_ptr<HostBuffer> keep = buffer;
  return at::from_blob(
      buffer->mutable_data() + offset, sizes, [keep](void*) mutable { keep.reset(); },
      at::TensorOptions().dtype(dtype).device(at::kCPU));
}

at::Tensor host_empty(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < kHugePage) return at::empty(sizes, at::TensorOptions().dtype(dtype));
  return host_tensor_view(HostBuffer::allocate(bytes), 0, sizes, dtype);
}

at::Tensor host_contiguous_float(const at::Tensor& t) {
  if (t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()) return t;
  at::Tensor out = host_empty(t.sizes(), at::kFloat);
  out.copy_(t);
  return out;
}

void keep_freed_blocks_for_reuse() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    const char* keep_defaults = std::getenv("CLIPSHARD_DEFAULT_MALLOC");
    if (keep_defaults != nullptr && std::strcmp(keep_defaults, "1") == 0) return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    // One arena: a thread's own arena grows in 64 MiB heaps that glibc unmaps as soon as one is
    // wholly free, whatever the trim threshold, so buffers that cross a heap edge (decode threads)
    // are faulted in afresh again and again. Only threads that have not allocated yet are affected,
    // hence the early call in main().
    mallopt(M_ARENA_MAX, 1);
  });
#endif
}

}  // namespace clipshard
