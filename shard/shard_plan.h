// The shard plan: every manifest cut into fixed line ranges. It depends only on the manifests'
// bytes and `lines_per_shard` — never on the number of ranks — which is what makes outputs
// byte-identical across rank counts and resumes (SPEC §6).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace clipshard {

struct ManifestInfo {
  std::string path;   // absolute path as given after glob expansion
  int64_t size = 0;   // bytes
  uint64_t hash = 0;  // xxh3-64 of the whole file: detects a changed manifest on resume
  int64_t lines = 0;  // line count (a last line without "\n" counts)
};

struct Shard {
  int64_t id = 0;          // position in the plan = position in the merged output
  int manifest = 0;        // index into ShardPlan::manifests
  int64_t first_line = 1;  // 1-based line number of the shard's first line in its manifest
  int64_t line_count = 0;
  int64_t byte_begin = 0;  // offset of first_line
  int64_t byte_end = 0;    // offset one past the shard's last line
};

struct ShardPlan {
  int64_t lines_per_shard = 0;
  std::vector<ManifestInfo> manifests;
  std::vector<Shard> shards;
  int64_t total_lines() const;
};

// Expands each input (a path or a glob pattern) to absolute paths: a pattern's matches sorted,
// inputs in the order given, duplicates kept once. Throws std::runtime_error naming an input that
// matches nothing or is not a regular file.
std::vector<std::filesystem::path> expand_manifest_inputs(const std::vector<std::string>& inputs);

// Reads every manifest once (streamed: memory does not grow with its size) and cuts it into
// shards of `lines_per_shard` lines (the last shard of a manifest may be shorter; an empty manifest
// has no shard). Throws std::runtime_error for unreadable files or lines_per_shard < 1.
ShardPlan plan_shards(const std::vector<std::filesystem::path>& manifests, int64_t lines_per_shard);

nlohmann::json manifest_fingerprints(const ShardPlan& plan);

}  // namespace clipshard
