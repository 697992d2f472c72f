#include "shard/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace clipshard {

namespace {

// Closes a POSIX file descriptor on scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

bool is_remote_path(std::string_view path) {
  const size_t colon = path.find("://");
  if (colon == std::string_view::npos || colon == 0) return false;
  // A URI scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
  for (size_t i = 0; i < colon; ++i) {
    const char c = path[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (i == 0 ? !alpha : !(alpha || digit || c == '+' || c == '-' || c == '.')) return false;
  }
  return true;
}

RowStatus read_image_file(const std::filesystem::path& path, std::vector<uint8_t>* bytes,
                          int64_t max_bytes) {
  bytes->clear();
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (the worker's
  // timeout would then abort the whole job for one bad row); it changes nothing for the regular
  // files that are read below. O_NOCTTY: a terminal path never becomes our controlling tty.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return RowStatus::Error(RowError::kFileNotFound, "no such file: " + path.string());
    return RowStatus::Error(RowError::kUnreadableFile,
                            "cannot open " + path.string() + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return RowStatus::Error(RowError::kUnreadableFile, "cannot stat " + path.string());
  if (S_ISDIR(st.st_mode))
    return RowStatus::Error(RowError::kIsDirectory, path.string() + " is a directory");
  if (!S_ISREG(st.st_mode))
    return RowStatus::Error(RowError::kUnreadableFile, path.string() + " is not a regular file");
  if (st.st_size == 0)
    return RowStatus::Error(RowError::kEmptyFile, path.string() + " is empty (0 bytes)");
  if (st.st_size > max_bytes) {
    return RowStatus::Error(RowError::kUnreadableFile, path.string() +
                                                           " is larger than max_file_bytes (" +
                                                           std::to_string(st.st_size) + " bytes)");
  }
  bytes->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes->size()) {
    const ssize_t n = ::read(fd.get(), bytes->data() + done, bytes->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A file that shrank is refused rather than decoded from what is left: the image would be
      // scored from bytes that were never one file's content.
      const int err = errno;
      bytes->clear();
      return RowStatus::Error(RowError::kUnreadableFile,
                              "read error on " + path.string() + ": " +
                                  (n == 0 ? "file shrank while reading" : std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  return RowStatus::Ok();
}

}  // namespace clipshard
