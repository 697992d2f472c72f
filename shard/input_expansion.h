// Turning the user's `input` values into the list of files a run reads. One function owns this:
// paths, glob patterns and brace patterns (`shards/{00000..00099}.tar`, `{a,b}`) are expanded by
// clipshard itself, so the result does not depend on the shell, and a pattern that matches nothing
// is an error instead of a silently smaller run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace clipshard {

enum class InputKind {
  kManifest,  // JSONL manifest: one row per line
  kTar,       // WebDataset tar shard (name ends in ".tar"): one row per sample
};

struct InputFile {
  std::filesystem::path path;  // absolute, lexically normal
  std::string given;           // the path as the user's pattern produced it (tar rows' __url__)
  InputKind kind = InputKind::kManifest;
};

// Expands brace groups like bash: `{a,b,c}` lists and integer ranges `{M..N}` (zero-padded to the
// wider bound when a bound has a leading zero, as bash does; descending ranges count down). Groups
// nest and combine left to right. A `{...}` that is neither (no comma, not a range) is kept as
// literal text. Throws std::runtime_error for a range of more than 10 million items.
std::vector<std::string> expand_braces(const std::string& pattern);

// The kind of an input by its name: ".tar" = WebDataset shard, anything else = JSONL manifest.
InputKind input_kind(const std::filesystem::path& path);

// Expands every input (brace groups first, then glob patterns `* ? [`), in the order given, a
// glob's matches sorted, each file kept once (first occurrence). Throws std::runtime_error naming
// the input when a glob matches nothing, a brace-expanded or plain path does not exist, or a
// match is not a regular file.
std::vector<InputFile> expand_inputs(const std::vector<std::string>& inputs);

}  // namespace clipshard
