// Writes one shard's parts (docs/FORMATS.md) and commits them in the order that makes a shard
// either complete or absent: output, sims and errors first, the done file last.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/atomic_file.h"
#include "shard/manifest_row.h"
#include "shard/run_directory.h"

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
  // "rank"), which marks the shard finished.
  void commit(nlohmann::json stats, int rank);

 private:
  ShardPartPaths paths_;
  int64_t shard_id_;
  AtomicFile output_, sims_, errors_;
};

// The JSON of an error record (one line of errors.jsonl).
nlohmann::ordered_json error_record_json(const ErrorRecord& record);

// Serialises a row for output.jsonl: compact, key order kept, UTF-8 as is, numbers round-trip.
std::string dump_row(const Json& row);

}  // namespace clipshard
