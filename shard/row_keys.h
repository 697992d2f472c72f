// The row keys part of a shard, parts/shard-N.rowkeys.bin (docs/FORMATS.md, "parts/"): for every
// object row of the shard, in the order of shard-N.out.jsonl, and every pipeline operator, the
// content keys of the image and the text embedding the row was scored with. It links rows to the
// content-keyed embedding cache (whose entries are deduplicated and carry only the first row that
// produced them), which is what `clipshard export` needs to write row-aligned embeddings.
//
// Layout (little-endian): the 8 bytes "CSRKEYS1", a uint32 byte length L, L bytes of JSON
// {"operators": [{"image": {"model_id", "pipeline"}, "text": {...}}, ...]} (one entry per pipeline
// operator: the cache tables of its embeddings), then one record per row: per operator four
// uint64, image key (hi, lo) then text key (hi, lo). A row that has no embeddings for an operator
// (a bad row: its score is 0.0 or its sim -0.0) has four zeros there.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shard/atomic_file.h"

namespace clipshard {

// The cache tables (docs/FORMATS.md, "Embedding cache") an operator's embeddings are stored in:
// {image_model_id, "image", image_pipeline} and {text_model_id, "text", text_pipeline}.
struct RowKeyTables {
  std::string image_model_id;
  std::string image_pipeline;
  std::string text_model_id;
  std::string text_pipeline;
};

// One operator's keys for one row: image (hi, lo), text (hi, lo). All zero = no embeddings.
using RowKeys = std::array<uint64_t, 4>;

inline bool has_embeddings(const RowKeys& keys) {
  return (keys[0] | keys[1] | keys[2] | keys[3]) != 0;
}

// parts/shard-<8 digits>.rowkeys.bin of the run directory `run_dir`.
std::filesystem::path row_keys_path(const std::filesystem::path& run_dir, int64_t shard_id);

// Writes a row keys part atomically (AtomicFile: temp name, fsync, rename on commit()).
class RowKeysWriter {
 public:
  // Opens the temporary file and writes the header. Throws std::runtime_error naming the file.
  RowKeysWriter(const std::filesystem::path& path, const std::vector<RowKeyTables>& operators);
  // One row: `keys` holds one entry per operator given to the constructor. Throws
  // std::invalid_argument when the count differs, std::runtime_error on a write error.
  void add_row(const std::vector<RowKeys>& keys);
  void commit();

 private:
  AtomicFile file_;
  size_t operators_;
};

// Reads a row keys part sequentially, one row at a time (constant memory).
class RowKeysReader {
 public:
  // Opens the file and reads its header. Throws std::runtime_error naming the file when it is
  // missing, not a row keys part, or its header is damaged.
  explicit RowKeysReader(const std::filesystem::path& path);
  ~RowKeysReader();
  RowKeysReader(const RowKeysReader&) = delete;
  RowKeysReader& operator=(const RowKeysReader&) = delete;

  const std::vector<RowKeyTables>& operators() const { return operators_; }
  // Reads the next row's keys (one per operator) into `keys`; false at the end of the file.
  // Throws std::runtime_error naming the file when the file ends inside a record.
  bool next(std::vector<RowKeys>* keys);

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::vector<RowKeyTables> operators_;
};

}  // namespace clipshard
