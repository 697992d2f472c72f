// The on-disk layout of embeddings.h5 (docs/FORMATS.md, "Embedding cache"), shared by the writer,
// the reader and the merge: file creation and validation, table groups, appending to and reading
// from a table's datasets. Internal to shard/cache; callers hold hdf5_mutex().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shard/cache/cache_table.h"
#include "shard/cache/content_key.h"
#include "shard/cache/hdf5_handles.h"

namespace clipshard::cache_format {

inline constexpr char kFormatName[] = "clipshard-embeddings";
// Version 2: every table sorted by key with a fence index (docs/FORMATS.md). Version 1 files
// (unsorted, no fence) are refused with a message to delete them; the next run rebuilds them.
inline constexpr int64_t kFormatVersion = 2;
inline constexpr char kModelsGroup[] = "/models";
// Entries the writer and the merge append at a time. Chunks of every dataset divide it, so appends
// cover whole chunks.
inline constexpr int64_t kBlockRows = 4096;
// Rows per chunk of the `key` and `row` datasets (16 KiB / 8 KiB: small parts stay small).
inline constexpr int64_t kIndexChunkRows = 1024;
// A table's `fence` dataset holds the key at every kFenceRows-th position: a lookup searches the
// fence in memory (16 bytes per 1024 keys) and then reads one chunk of keys.
inline constexpr int64_t kFenceRows = kIndexChunkRows;

enum class DType { kFloat32, kFloat16 };
const char* dtype_name(DType dtype);  // "float32" | "float16"
size_t dtype_size(DType dtype);

// Throws std::invalid_argument unless the table's strings are non-empty and kind is image|text.
void validate_table(const CacheTable& table);
// "/models/<model_id>/<kind>/<pipeline>" with '%' '/' and a lone '.' escaped as %25 %2F %2E.
std::string table_group_path(const CacheTable& table);

// Creates (truncating) a cache file with the root attributes and /models. Throws Hdf5Error.
H5File create_file(const std::filesystem::path& path);
// Opens a cache file read-only and checks `format` and `version`. Throws Hdf5Error with a hint
// when the file is not an HDF5 file, is truncated, or is not a clipshard cache of this version.
H5File open_file(const std::filesystem::path& path);

// The temporary name a cache file is written under: "<path>.tmp".
std::filesystem::path temp_path_for(const std::filesystem::path& path);
// After the HDF5 file at `temp` is closed: fsyncs it, renames it to `path` (replacing it) and
// fsyncs the directory. Throws std::runtime_error naming the files on failure.
void fsync_and_rename(const std::filesystem::path& temp, const std::filesystem::path& path);

struct TableInfo {
  CacheTable table;
  TableDescription description;
  std::string group;  // path of the table's group in the file
  int dim = 0;
  DType dtype = DType::kFloat32;
  int64_t rows = 0;
};
// Every table of an open cache file, in name order, with shapes checked against each other.
std::vector<TableInfo> list_tables(hid_t file, const std::filesystem::path& path);

// A table's datasets in a file being written: appends blocks of entries, in increasing key order.
class TableAppender {
 public:
  TableAppender(hid_t file, const std::filesystem::path& path, const CacheTable& table, int dim,
                DType dtype, int gzip_level, const TableDescription& description = {});
  // Appends n entries: keys as n (hi, lo) pairs, rows, and n*dim embedding values of `dtype`.
  // Keys must be strictly increasing (ContentKey's order) across all appends: throws
  // std::logic_error otherwise (a bug in the caller, nothing is written).
  void append(const uint64_t* keys, const uint64_t* rows, const void* embeddings, size_t n);
  int64_t rows() const { return rows_; }
  // Writes the fence and closes the datasets and the group (checked).
  void close();

 private:
  std::filesystem::path path_;
  std::string group_path_;
  int dim_;
  DType dtype_;
  int64_t rows_ = 0;
  bool has_last_ = false;
  ContentKey last_{};
  std::vector<uint64_t> fence_keys_;  // (hi, lo) of every kFenceRows-th key
  H5Type memory_type_;                // float16 only (float32 uses H5T_NATIVE_FLOAT)
  H5Group group_;
  H5Dataset key_, row_, embedding_, fence_;
};

// A table's datasets in a file being read: reads ranges of entries.
class TableSource {
 public:
  // Opens the table's datasets and checks their shapes and types against `info` (rows excepted).
  TableSource(hid_t file, const std::filesystem::path& path, const TableInfo& info);
  int64_t rows() const { return rows_; }
  void read_keys(int64_t start, size_t n, uint64_t* keys);  // n (hi, lo) pairs
  void read_rows(int64_t start, size_t n, uint64_t* rows);
  // n*dim values of the table's dtype.
  void read_embeddings(int64_t start, size_t n, void* out);
  // The whole fence: ceil(rows / kFenceRows) (hi, lo) pairs.
  std::vector<uint64_t> read_fence();
  // Throws Hdf5Error naming the file: the table is not sorted as version 2 requires (`what`).
  [[noreturn]] void fail_layout(const std::string& what) const;

 private:
  void read(hid_t dataset, hid_t mem_type, int64_t start, size_t n, int rank, size_t cols,
            void* out, const char* name);
  std::filesystem::path path_;
  TableInfo info_;
  int64_t rows_ = 0;
  int64_t fence_entries_ = 0;
  H5Type memory_type_;  // float16 only
  H5Dataset key_, row_, embedding_, fence_;
};

}  // namespace clipshard::cache_format
