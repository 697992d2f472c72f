// Turning one manifest line into a row: a JSON object whose key order is kept (output rows pass all
// input columns through unchanged and in order).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "shard/row_status.h"

namespace clipshard {

using Json = nlohmann::ordered_json;

enum class LineKind {
  kBlank,   // empty or whitespace only: skipped, neither a row nor an error
  kRow,     // a JSON object
  kBroken,  // not a row: goes to errors.jsonl only (status says why)
};

struct ParsedLine {
  LineKind kind = LineKind::kBlank;
  Json object;       // valid when kind == kRow
  RowStatus status;  // set when kind == kBroken
};

// Arrays/objects nested deeper than this make a line kBroken (malformed_json): Python's json module
// gives up near 1000 levels, and deeper values would overflow the stack when copied or written.
constexpr int kMaxJsonNesting = 512;

// Classifies and parses one line (without its newline). Never throws.
ParsedLine parse_manifest_line(std::string_view text);

// True when `text` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Reads string field `key` of a row: kMissingKey when absent, kWrongType when not a string.
RowStatus get_string_field(const Json& row, const std::string& key, std::string* out);

}  // namespace clipshard
