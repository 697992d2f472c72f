// The shard plan: every input cut into fixed ranges of rows (manifest lines, or samples of a
// WebDataset tar). It depends only on the inputs' bytes and `lines_per_shard` — never on the number
// of ranks — which is what makes outputs byte-identical across rank counts and resumes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/input_expansion.h"

namespace clipshard {

// One input file of the plan (a manifest or a tar; the name is historical).
struct ManifestInfo {
  std::string path;  // absolute path after expansion
  InputKind kind = InputKind::kManifest;
  std::string url;       // the path as the user's input produced it (tar rows' __url__)
  int64_t size = 0;      // bytes
  uint64_t hash = 0;     // manifest: xxh3-64 of the whole file; tar: xxh3-64 of its headers
  int64_t mtime_ns = 0;  // tar only: with size and header hash, detects a changed tar on resume
  int64_t lines = 0;     // manifest: line count (a last line without "\n" counts); tar: samples
};

struct Shard {
  int64_t id = 0;          // position in the plan = position in the merged output
  int manifest = 0;        // index into ShardPlan::manifests
  int64_t first_line = 1;  // 1-based line number (tar: sample index) of the shard's first row
  int64_t line_count = 0;  // lines (tar: samples)
  int64_t byte_begin = 0;  // offset of first_line (tar: of the first sample's first header)
  int64_t byte_end = 0;    // offset one past the shard's last line (tar: last sample)
};

struct ShardPlan {
  int64_t lines_per_shard = 0;
  std::vector<ManifestInfo> manifests;
  std::vector<Shard> shards;
  int64_t total_lines() const;
};

// Reads every manifest once (streamed: memory does not grow with its size) and cuts it into
// shards of `lines_per_shard` lines (the last shard of a manifest may be shorter; an empty manifest
// has no shard). A tar is scanned by its headers only (member data is skipped, not read) and cut
// into shards of `lines_per_shard` samples; damaged stretches of a tar are samples too (they become
// error records). Throws std::runtime_error for unreadable files or lines_per_shard < 1.
ShardPlan plan_shards(const std::vector<InputFile>& inputs, int64_t lines_per_shard);
// The same for paths, each of the kind its name says (input_kind) and given as itself.
ShardPlan plan_shards(const std::vector<std::filesystem::path>& inputs, int64_t lines_per_shard);

// The inputs' identity for state.json and summary.json: [{path, size, lines, xxh3}] per input,
// tars with kind "tar", url and mtime_ns added.
nlohmann::json manifest_fingerprints(const ShardPlan& plan);

}  // namespace clipshard
