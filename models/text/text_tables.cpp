#include "models/text/text_tables.h"

#include <algorithm>
#include <cstdint>

namespace clipshard::text_tables {
namespace {

#include "models/text/text_tables.inc"

// Compares an ASCII C string with a code point string, code point by code point.
int compare_name(const char* a, std::u32string_view b) {
  std::size_t i = 0;
  for (; a[i] != '\0' && i < b.size(); ++i) {
    const auto ca = static_cast<char32_t>(static_cast<unsigned char>(a[i]));
    if (ca != b[i]) return ca < b[i] ? -1 : 1;
  }
  if (a[i] == '\0') return i == b.size() ? 0 : -1;
  return 1;
}

std::optional<std::u32string_view> find_entity(const EntityEntry* table, std::size_t n,
                                               std::u32string_view name) {
  const EntityEntry* end = table + n;
  const EntityEntry* it = std::lower_bound(
      table, end, name,
      [](const EntityEntry& e, std::u32string_view key) { return compare_name(e.name, key) < 0; });
  if (it != end && compare_name(it->name, name) == 0) return std::u32string_view(it->value);
  return std::nullopt;
}

std::optional<std::u32string_view> find_map(const CodepointMapEntry* table, std::size_t n,
                                            unsigned long code) {
  const CodepointMapEntry* end = table + n;
  const CodepointMapEntry* it = std::lower_bound(
      table, end, code, [](const CodepointMapEntry& e, unsigned long key) { return e.code < key; });
  if (it != end && it->code == code) return std::u32string_view(it->value);
  return std::nullopt;
}

bool in_set(const char32_t* table, std::size_t n, unsigned long code) {
  return std::binary_search(table, table + n, code,
                            [](unsigned long a, unsigned long b) { return a < b; });
}

}  // namespace

std::optional<std::u32string_view> html5_entity(std::u32string_view name) {
  return find_entity(kHtml5Entities, kHtml5EntitiesCount, name);
}
std::optional<std::u32string_view> ftfy_entity(std::u32string_view entity) {
  return find_entity(kFtfyEntities, kFtfyEntitiesCount, entity);
}
std::optional<std::u32string_view> invalid_charref(unsigned long num) {
  return find_map(kInvalidCharrefs, kInvalidCharrefsCount, num);
}
bool is_invalid_codepoint(unsigned long num) {
  return in_set(kInvalidCodepoints, kInvalidCodepointsCount, num);
}
std::optional<std::u32string_view> ftfy_c1_control(char32_t c) {
  if (c < 0x80 || c > 0x9F) return std::nullopt;
  return find_map(kFtfyC1Controls, kFtfyC1ControlsCount, c);
}
std::optional<std::u32string_view> ftfy_ligature(char32_t c) {
  return find_map(kFtfyLigatures, kFtfyLigaturesCount, c);
}
std::optional<std::u32string_view> ftfy_width(char32_t c) {
  if (c != 0x3000 && (c < 0xFF01 || c > 0xFFEF)) return std::nullopt;
  return find_map(kFtfyWidthMap, kFtfyWidthMapCount, c);
}
bool ftfy_is_single_quote(char32_t c) {
  return in_set(kFtfySingleQuotes, kFtfySingleQuotesCount, c);
}
bool ftfy_is_double_quote(char32_t c) {
  return in_set(kFtfyDoubleQuotes, kFtfyDoubleQuotesCount, c);
}
bool ftfy_is_removed_control(char32_t c) {
  return in_set(kFtfyRemovedControlChars, kFtfyRemovedControlCharsCount, c);
}

}  // namespace clipshard::text_tables
