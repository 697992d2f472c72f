#include "shard/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace clipshard {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

AtomicFile::AtomicFile(const std::filesystem::path& path) : path_(path) {
  temp_path_ = path;
  temp_path_ += ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) {
    throw std::runtime_error("cannot create " + temp_path_.string() + ": " + errno_text() +
                             " (is the run directory writable and the disk not full?)");
  }
  // stdio's default buffer is the file system's block (4 KiB): a write(2) every ~50 rows of
  // output.jsonl, each a system call (costly on a VM). 1 MiB makes the merge's writes large.
  std::setvbuf(file_, nullptr, _IOFBF, kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(temp_path_, ec);
  }
}

void AtomicFile::write(const void* data, size_t size) {
  if (size == 0) return;
  if (!file_) throw std::runtime_error("write after commit to " + path_.string());
  if (std::fwrite(data, 1, size, file_) != size)
    throw std::runtime_error("cannot write " + temp_path_.string() + ": " + errno_text());
}

void AtomicFile::write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

int64_t AtomicFile::append_file(const std::filesystem::path& source) {
  if (!file_) throw std::runtime_error("write after commit to " + path_.string());
  if (std::fflush(file_) != 0)
    throw std::runtime_error("cannot write " + temp_path_.string() + ": " + errno_text());
  const int in = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error("cannot read " + source.string() + ": " + errno_text());
  const int out = ::fileno(file_);
  int64_t total = 0;
  bool kernel_copy = true;
  std::vector<char> buffer;
  for (;;) {
    ssize_t n;
    if (kernel_copy) {
      n = ::copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
                    errno == EPERM)) {
        kernel_copy = false;  // not between these file systems / in this kernel: copy ourselves
        buffer.resize(size_t{1} << 20);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string why = errno_text();
        ::close(in);
        throw std::runtime_error("cannot append " + source.string() + " to " + temp_path_.string() +
                                 ": " + why);
      }
    } else {
      n = ::read(in, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string why = errno_text();
        ::close(in);
        throw std::runtime_error("cannot read " + source.string() + ": " + why);
      }
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(out, buffer.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          const std::string why = errno_text();
          ::close(in);
          throw std::runtime_error("cannot write " + temp_path_.string() + ": " + why);
        }
        done += w;
      }
    }
    if (n == 0) break;
    total += n;
  }
  ::close(in);
  // stdio's idea of the position must follow the bytes written behind its back.
  if (std::fseek(file_, 0, SEEK_END) != 0)
    throw std::runtime_error("cannot write " + temp_path_.string() + ": " + errno_text());
  return total;
}

void AtomicFile::commit() {
  if (!file_) throw std::runtime_error("double commit of " + path_.string());
  std::FILE* f = file_;
  file_ = nullptr;
  const bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const std::string why = ok ? "" : errno_text();
  std::fclose(f);
  if (!ok || std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const std::string reason = ok ? errno_text() : why;
    std::error_code ec;
    std::filesystem::remove(temp_path_, ec);
    throw std::runtime_error("cannot complete " + path_.string() + ": " + reason);
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace clipshard
