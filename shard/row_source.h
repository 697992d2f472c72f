// The rows of one shard of work, whatever the input kind: lines of a JSONL manifest, or samples of
// a WebDataset tar turned into rows (docs/FORMATS.md, "Tar rows"). Workers and the pass-through
// processor read shards only through this, so manifests and tars follow the same row rules.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shard/input_expansion.h"
#include "shard/manifest_reader.h"
#include "shard/manifest_row.h"
#include "shard/tar_reader.h"

namespace clipshard {

// Text members become strings under their extension; image members become member references.
bool is_text_extension(const std::string& extension);   // txt, text, caption
bool is_image_extension(const std::string& extension);  // jpg jpeg png webp gif bmp tif tiff

struct SourceRow {
  int64_t line = 0;  // manifest: 1-based line number; tar: 1-based sample index
  ParsedLine parsed;
  bool from_tar = false;
  std::string sample;                // tar rows: the sample's key
  std::vector<std::string> skipped;  // tar rows: non-file members of the sample ("jpg (symlink)")
};

// Text and JSON members larger than this make the sample a bad row instead of being read.
constexpr int64_t kMaxTarTextMember = int64_t{16} << 20;

// A tar sample as a row: `__key__`, `__url__`, the `.json` member's fields (when an object),
// text members as strings and image members as {"member", "offset", "size"} references.
// kBroken (an error record, no output row) when the sample has a problem, its `.json` is not
// valid JSON, or a text member is not valid UTF-8 or too large. Reads only text/JSON members.
ParsedLine tar_sample_to_row(const TarSample& sample, const std::filesystem::path& tar,
                             const std::string& url);

class RowSource {
 public:
  // Reads `count` rows of `path` from `byte_begin`, the first being line/sample `first_line`.
  // `url` is the input as the user gave it (tar rows' __url__). Throws std::runtime_error naming
  // the file when it cannot be opened.
  RowSource(InputKind kind, const std::filesystem::path& path, std::string url, int64_t byte_begin,
            int64_t first_line);

  // The next line or sample; false at the end of the input (the caller stops after its count).
  bool next(SourceRow* row);

 private:
  InputKind kind_;
  std::filesystem::path path_;
  std::string url_;
  std::unique_ptr<ManifestReader> manifest_;
  std::unique_ptr<TarSampleScanner> tar_;
};

}  // namespace clipshard
