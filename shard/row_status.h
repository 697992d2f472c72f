// Per-row outcome. A bad row is data, not an exception: every stage returns a RowStatus and the
// row goes on (score 0.0, filtered out) with a record in errors.jsonl (docs/FORMATS.md).
#pragma once

#include <string>
#include <string_view>

namespace clipshard {

// Stable, machine-readable reasons. The snake_case name (row_error_name) is what errors.jsonl and
// summary.json use, so never rename one; add new codes at the end.
enum class RowError {
  kOk = 0,
  // Manifest lines.
  kMalformedJson,  // the line is not valid JSON
  kNotAnObject,    // valid JSON, but not an object
  kMissingKey,     // the image or caption key is absent
  kWrongType,      // the image or caption value is not a string
  kInvalidUtf8,    // the line or a value is not valid UTF-8
  // Captions.
  kEmptyCaption,  // empty or whitespace-only caption
  // Image paths and files.
  kRemotePath,       // http(s)://, s3:// ...: remote paths are not supported
  kPathOutsideRoot,  // path escapes the enforced image root
  kFileNotFound,
  kIsDirectory,
  kUnreadableFile,  // open/read failed (permissions, I/O error)
  kEmptyFile,
  kNotAnImage,         // no known image signature
  kUnsupportedFormat,  // recognised container we cannot decode
  kTruncatedImage,     // decoder ran out of data (PIL raises here; we never score a partial image)
  kCorruptImage,       // decoder reported corrupt data
  kImageTooLarge,      // width*height above the configured pixel limit (decompression bomb)
  // Anything else that failed for this row only.
  kInternal,
  // WebDataset tar shards.
  kCorruptTar,    // a member header has a bad checksum or size: the sample cannot be read whole
  kTruncatedTar,  // the tar ends inside a header or a member's data
};

// "ok", "malformed_json", "file_not_found", ...
std::string_view row_error_name(RowError code);

struct RowStatus {
  RowError code = RowError::kOk;
  std::string message;  // human-readable detail, e.g. "libjpeg: Premature end of JPEG file"

  bool ok() const { return code == RowError::kOk; }
  static RowStatus Ok() { return {}; }
  static RowStatus Error(RowError code, std::string message) { return {code, std::move(message)}; }
};

}  // namespace clipshard
