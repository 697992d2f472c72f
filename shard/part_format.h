// The shard part files (docs/FORMATS.md, "parts/"), in one place: their names and paths are
// RunDirectory::shard_parts (shard/run_directory.h); this header writes them (ShardPartWriter,
// what a worker leaves behind) and reads their common pieces back (the merge). Parts:
//   output  one JSON row per line (dump_row)
//   sims    float32 per object row and filter column, native byte order (little-endian hosts)
//   errors  one error record per line (error_record_json)
//   done    the shard's statistics (shard/shard_stats.h, plus "shard" and "rank"), written last:
//           its presence commits the shard
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/atomic_file.h"
#include "shard/manifest_row.h"
#include "shard/run_directory.h"
#include "shard/shard_stats.h"

namespace clipshard {

struct ErrorRecord {
  std::string manifest;
  int64_t line = 0;
  RowStatus status;
  std::string op;         // operator name, when the failure belongs to one
  std::string key;        // the row key involved (image/caption key), when there is one
  bool from_tar = false;  // tar rows: `manifest` is the tar, `line` the sample index
  std::string sample;     // tar rows: the sample's key
};

class ShardPartWriter {
 public:
  // Opens the temporary part files of `shard_id`. Throws std::runtime_error when it cannot.
  ShardPartWriter(const RunDirectory& dir, int64_t shard_id);

  // One output row (already serialised, no newline) and its filter similarities (one per filter).
  void add_row(const std::string& json_line, const std::vector<float>& sims);
  void add_error(const ErrorRecord& record);
  // Commits output, sims and errors, then writes `stats` as the done file (with "shard" and
  // "rank"), which marks the shard finished: a shard is either complete or absent.
  void commit(const ShardStats& stats, int rank);

 private:
  ShardPartPaths paths_;
  int64_t shard_id_;
  AtomicFile output_, sims_, errors_;
};

// The JSON of an error record (one line of errors.jsonl).
nlohmann::ordered_json error_record_json(const ErrorRecord& record);

// Serialises a row for output.jsonl: compact, key order kept, UTF-8 as is, numbers round-trip.
std::string dump_row(const Json& row);

// Reads a done part: the shard's statistics, and the rank that wrote it into *rank (-1 when the
// file names none). Throws std::runtime_error naming the file when it cannot be read or parsed.
ShardStats read_done_part(const std::filesystem::path& path, int* rank);

// Reads a sims part: `columns` float32 per object row (empty when columns == 0, without reading).
// Throws std::runtime_error naming the file when it cannot be read or holds a partial record.
std::vector<float> read_sims_part(const std::filesystem::path& path, size_t columns);

}  // namespace clipshard
