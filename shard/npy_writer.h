// Writes a 2-D array as a NumPy .npy file (format version 1.0, C order, little-endian), streamed:
// rows are appended as they come and the row count is written into the header at the end, so a
// file of any length is written in constant memory. numpy.load reads the result (also with
// mmap_mode="r").
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace clipshard {

enum class NpyDType {
  kFloat32,  // "<f4"
  kFloat16,  // "<f2" (IEEE binary16; the caller converts, e.g. with floats_to_halves)
};
size_t npy_dtype_size(NpyDType dtype);

// The 64-byte-aligned v1.0 header of an array of `rows` x `cols` (magic, version, header length,
// the dict padded with spaces and ended by '\n'). Its length does not depend on `rows` as long as
// rows < 10^15, which is what lets NpyWriter rewrite it in place.
std::string npy_header(NpyDType dtype, int64_t rows, int64_t cols);

class NpyWriter {
 public:
  // Creates (truncates) `path` and writes a header for 0 rows of `cols` columns. Throws
  // std::invalid_argument when cols < 1, std::runtime_error naming the file when it cannot be
  // created.
  NpyWriter(const std::filesystem::path& path, int64_t cols, NpyDType dtype);
  // Without finish(), the file is incomplete: the destructor closes and deletes it.
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  // Appends `n` rows: n * cols values of the writer's dtype at `data` (row-major). Throws
  // std::runtime_error naming the file on a write error (e.g. a full disk).
  void append(const void* data, size_t n);
  // Writes the final row count into the header, flushes, fsyncs and closes. Throws
  // std::runtime_error naming the file on failure (the file is then deleted).
  void finish();

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int64_t cols_;
  NpyDType dtype_;
  int64_t rows_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace clipshard
