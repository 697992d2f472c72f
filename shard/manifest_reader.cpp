#include "shard/manifest_reader.h"

#include <stdexcept>

namespace clipshard {

ManifestReader::ManifestReader(const std::filesystem::path& path, int64_t byte_offset,
                               int64_t first_line_number)
    : path_(path), next_offset_(byte_offset), next_line_number_(first_line_number) {
  in_.open(path, std::ios::binary);
  if (!in_) throw std::runtime_error("cannot open manifest " + path.string());
  in_.seekg(byte_offset);
  if (!in_) throw std::runtime_error("cannot seek in manifest " + path.string());
}

bool ManifestReader::next(ManifestLine* line) {
  line->text.clear();
  if (!std::getline(in_, line->text)) {
    if (line->text.empty()) return false;  // clean end of file
  }
  const int64_t consumed = static_cast<int64_t>(line->text.size()) + (in_.eof() ? 0 : 1);
  line->byte_offset = next_offset_;
  line->line_number = next_line_number_++;
  next_offset_ += consumed;
  if (!line->text.empty() && line->text.back() == '\r') line->text.pop_back();
  return true;
}

}  // namespace clipshard
