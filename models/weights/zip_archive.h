// Minimal zip archive reader and writer for torch.save / TorchScript archives. Internal to
// models/weights. The reader never trusts the bytes: every offset and size is checked against the
// buffer and violations throw CheckpointError naming the archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace clipshard {

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;  // 0 stored, 8 deflated (anything else is refused on read)
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_header_offset = 0;
};

// Reads the central directory (zip64 end-of-central-directory records and extra fields included)
// of the archive held in [data, data + size), which must outlive the reader.
class ZipReader {
 public:
  ZipReader(const uint8_t* data, size_t size, std::string archive_name);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ZipEntry* find(const std::string& name) const;

  // The bytes of `entry`: stored entries point into the archive buffer (no copy); deflated entries
  // are inflated into `*scratch`. With `verify_crc` the CRC-32 is checked.
  struct Bytes {
    const uint8_t* data;
    size_t size;
  };
  Bytes read(const ZipEntry& entry, std::vector<uint8_t>* scratch, bool verify_crc) const;

  const std::string& archive_name() const { return name_; }

 private:
  [[noreturn]] void fail(const std::string& what) const;

  const uint8_t* data_;
  size_t size_;
  std::string name_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// Writes an archive of stored (uncompressed) entries whose data starts at a multiple of
// `alignment` bytes from the file start (padding in the local extra field, as PyTorch does).
class ZipWriter {
 public:
  ZipWriter(const std::filesystem::path& file, bool force_zip64);
  void add(const std::string& name, const void* data, size_t size, size_t alignment = 64);
  // Writes the central directory; the file is complete only after this. Throws CheckpointError on
  // I/O failure.
  void finish();

 private:
  struct Written {
    std::string name;
    uint32_t crc32;
    uint64_t size;
    uint64_t offset;
  };
  void put(const void* p, size_t n);
  void check();

  std::filesystem::path file_;
  std::ofstream out_;
  bool force_zip64_;
  uint64_t pos_ = 0;
  std::vector<Written> written_;
};

}  // namespace clipshard
