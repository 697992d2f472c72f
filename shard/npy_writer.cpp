#include "shard/npy_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace clipshard {

namespace {

std::string errno_text() { return std::strerror(errno); }

// The dict's room: the shape is padded so that the header keeps one length while the row count
// grows from 0 to any realistic value (NpyWriter rewrites the header in place at the end).
constexpr size_t kShapeWidth = 40;

}  // namespace

size_t npy_dtype_size(NpyDType dtype) { return dtype == NpyDType::kFloat16 ? 2 : 4; }

std::string npy_header(NpyDType dtype, int64_t rows, int64_t cols) {
  std::string shape = "(" + std::to_string(rows) + ", " + std::to_string(cols) + "), ";
  if (shape.size() < kShapeWidth) shape.append(kShapeWidth - shape.size(), ' ');
  std::string dict = std::string("{'descr': '") + (dtype == NpyDType::kFloat16 ? "<f2" : "<f4") +
                     "', 'fortran_order': False, 'shape': " + shape + "}";
  // magic (6) + version (2) + header length (2) + dict + '\n', padded to a multiple of 64.
  size_t total = 10 + dict.size() + 1;
  const size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string header = "\x93NUMPY";
  header += '\x01';
  header += '\x00';
  header += static_cast<char>(dict.size() & 0xFF);
  header += static_cast<char>((dict.size() >> 8) & 0xFF);
  return header + dict;
}

NpyWriter::NpyWriter(const std::filesystem::path& path, int64_t cols, NpyDType dtype)
    : path_(path), cols_(cols), dtype_(dtype) {
  if (cols < 1) throw std::invalid_argument("NpyWriter: " + path.string() + ": cols < 1");
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw std::runtime_error("cannot create " + path.string() + ": " + errno_text());
  const std::string header = npy_header(dtype_, 0, cols_);
  if (std::fwrite(header.data(), 1, header.size(), file_) != header.size()) {
    const std::string why = errno_text();
    std::fclose(file_);
    file_ = nullptr;
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    throw std::runtime_error("cannot write " + path.string() + ": " + why);
  }
}

NpyWriter::~NpyWriter() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
}

void NpyWriter::append(const void* data, size_t n) {
  if (!file_) throw std::runtime_error("write after finish to " + path_.string());
  const size_t bytes = n * static_cast<size_t>(cols_) * npy_dtype_size(dtype_);
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes)
    throw std::runtime_error("cannot write " + path_.string() + ": " + errno_text());
  rows_ += static_cast<int64_t>(n);
}

void NpyWriter::finish() {
  if (!file_) throw std::runtime_error("double finish of " + path_.string());
  const std::string header = npy_header(dtype_, rows_, cols_);
  std::string why;
  if (std::fflush(file_) != 0 || std::fseek(file_, 0, SEEK_SET) != 0 ||
      std::fwrite(header.data(), 1, header.size(), file_) != header.size() ||
      std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    why = errno_text();
  const bool closed = std::fclose(file_) == 0;
  if (why.empty() && !closed) why = errno_text();
  file_ = nullptr;
  if (!why.empty()) {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    throw std::runtime_error("cannot complete " + path_.string() + ": " + why);
  }
}

}  // namespace clipshard
