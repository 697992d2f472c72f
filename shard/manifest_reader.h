// Streaming reader of one JSONL manifest: one line at a time, with its 1-based line number and
// byte offset, so that a shard (a line range) can be read without reading the lines before it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace clipshard {

struct ManifestLine {
  int64_t line_number = 0;  // 1-based
  int64_t byte_offset = 0;  // offset of the line's first byte in the file
  std::string text;         // without the trailing "\n" and without a trailing "\r" (CRLF files)
};

class ManifestReader {
 public:
  // Opens `path` positioned at `byte_offset`, which must be the start of line `first_line_number`.
  // Throws std::runtime_error naming the file when it cannot be opened.
  explicit ManifestReader(const std::filesystem::path& path, int64_t byte_offset = 0,
                          int64_t first_line_number = 1);

  // Reads the next line; false at end of file. A last line without "\n" is still a line; an empty
  // file has no lines. NUL bytes are kept in `text` (the row parser rejects them as bad JSON).
  bool next(ManifestLine* line);

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  int64_t next_offset_ = 0;
  int64_t next_line_number_ = 1;
};

}  // namespace clipshard
