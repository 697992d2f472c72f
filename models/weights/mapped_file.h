// Read-only view of a whole file (mmap), used by the checkpoint readers so that multi-GB
// checkpoints are not read into memory twice. Internal to models/weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace clipshard {

// Maps `file` read-only. Throws CheckpointError naming the file when it cannot be opened, is not a
// regular file or cannot be mapped. An empty file is valid and has size() == 0.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& file);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace clipshard
