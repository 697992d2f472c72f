#include "shard/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

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
