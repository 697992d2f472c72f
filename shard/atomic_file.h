// A file that appears at its final path complete or not at all: written to a temporary name in the
// same directory, flushed, fsync'ed and renamed on commit(). Destroyed without commit(), it removes
// the temporary file. Used for every file clipshard writes into a run directory.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string_view>

namespace clipshard {

class AtomicFile {
 public:
  // Opens `<path>.tmp-<pid>` for writing. Throws std::runtime_error naming the directory when it
  // cannot be created (unwritable directory, disk full...).
  explicit AtomicFile(const std::filesystem::path& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes. Throws std::runtime_error on a write error (e.g. ENOSPC), naming the file.
  void write(std::string_view bytes);
  void write(const void* data, size_t size);
  // Appends the whole of file `source` (copy_file_range: the kernel copies, or shares extents on
  // file systems that can; read/write where it cannot). Returns the bytes appended. Throws
  // std::runtime_error naming the file that cannot be read or written.
  int64_t append_file(const std::filesystem::path& source);
  // Flushes, fsyncs and renames to the final path. Throws on failure (the temp file is removed).
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  std::FILE* file_ = nullptr;
};

// Writes `bytes` to `path` atomically (AtomicFile in one call).
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Whole file as a string; throws std::runtime_error naming the file when unreadable.
std::string read_file(const std::filesystem::path& path);

}  // namespace clipshard
