// Compiled-in text tables (generated from tests/fixtures/text/*.json by
// scripts/gen_text_tables.py): Python 3.11's html.unescape tables and the ftfy-lite rule tables
// (tests/fixtures/FTFY_LITE.md).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace clipshard::text_tables {

struct EntityEntry {
  const char* name;       // ASCII, without the leading '&'
  const char32_t* value;  // NUL-terminated; no table value contains U+0000
};
struct CodepointMapEntry {
  char32_t code;
  const char32_t* value;
};

// Python's html.entities.html5: `name` as it follows '&' (with its ';' when present).
std::optional<std::u32string_view> html5_entity(std::u32string_view name);
// ftfy's HTML_ENTITIES: `entity` is the whole match "&name;".
std::optional<std::u32string_view> ftfy_entity(std::u32string_view entity);
// Python's html._invalid_charrefs (num -> replacement).
std::optional<std::u32string_view> invalid_charref(unsigned long num);
// Python's html._invalid_codepoints.
bool is_invalid_codepoint(unsigned long num);

// ftfy-lite per-character maps; nullopt when the character is not in the table.
std::optional<std::u32string_view> ftfy_c1_control(char32_t c);
std::optional<std::u32string_view> ftfy_ligature(char32_t c);
std::optional<std::u32string_view> ftfy_width(char32_t c);
bool ftfy_is_single_quote(char32_t c);
bool ftfy_is_double_quote(char32_t c);
bool ftfy_is_removed_control(char32_t c);

}  // namespace clipshard::text_tables
