#include "shard/manifest_row.h"

#include <algorithm>

namespace clipshard {

namespace {

// Deepest array/object nesting in a JSON text (brackets inside strings do not count); stops
// counting once `limit` is exceeded. nlohmann parses iteratively, but copying and dumping a value
// recurse once per level: a row of 100000 nested arrays overflowed the stack of the worker.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

ParsedLine parse_manifest_line(std::string_view text) {
  ParsedLine result;
  if (text.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos) return result;  // blank
  result.kind = LineKind::kBroken;
  if (!is_valid_utf8(text)) {
    result.status = RowStatus::Error(RowError::kInvalidUtf8, "line is not valid UTF-8");
    return result;
  }
  // nlohmann's lexer takes a NUL byte for the end of input and would accept "{...}\0garbage".
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    result.status =
        RowStatus::Error(RowError::kMalformedJson, "NUL byte at column " + std::to_string(nul + 1));
    return result;
  }
  if (nesting_depth(text, kMaxJsonNesting) > kMaxJsonNesting) {
    result.status =
        RowStatus::Error(RowError::kMalformedJson,
                         "JSON nested deeper than " + std::to_string(kMaxJsonNesting) + " levels");
    return result;
  }
  Json parsed = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // Recover the parser's own explanation (position and reason) for the error record.
    std::string why = "invalid JSON";
    try {
      [[maybe_unused]] Json unused = Json::parse(text.begin(), text.end());
    } catch (const Json::exception& e) {  // parse_error, or out_of_range for 1e999
      why = e.what();
    }
    result.status = RowStatus::Error(RowError::kMalformedJson, why);
    return result;
  }
  if (!parsed.is_object()) {
    result.status =
        RowStatus::Error(RowError::kNotAnObject,
                         std::string("JSON value is ") + parsed.type_name() + ", not an object");
    return result;
  }
  result.kind = LineKind::kRow;
  result.object = std::move(parsed);
  return result;
}

RowStatus get_string_field(const Json& row, const std::string& key, std::string* out) {
  auto it = row.find(key);
  if (it == row.end())
    return RowStatus::Error(RowError::kMissingKey, "missing key \"" + key + "\"");
  if (!it->is_string()) {
    return RowStatus::Error(RowError::kWrongType,
                            "key \"" + key + "\" is " + it->type_name() + ", not a string");
  }
  *out = it->get<std::string>();
  return RowStatus::Ok();
}

}  // namespace clipshard
