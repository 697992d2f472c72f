// The compiled-in tables equal tests/fixtures/text/*.json entry by entry (the generated
// models/text/text_tables.inc is not stale).
#include "models/text/text_tables.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "models/text/unicode_text.h"

namespace clipshard::text_tables {
namespace {

nlohmann::json load(const char* name) {
  std::ifstream in(testing::fixtures() / "text" / name);
  return nlohmann::json::parse(in);
}

std::u32string u32(const std::string& s) { return text::utf8_to_u32(s); }

// Checks every entry of a {code: text} table through its lookup; returns the entry count.
int check_map(const nlohmann::json& j, const char* key,
              std::optional<std::u32string_view> (*lookup)(char32_t)) {
  int n = 0;
  for (const auto& [code, value] : j.at(key).items()) {
    const auto got = lookup(static_cast<char32_t>(std::stoul(code)));
    EXPECT_TRUE(got) << key << " " << code;
    if (got) {
      EXPECT_EQ(std::u32string(*got), u32(value.get<std::string>())) << key << " " << code;
    }
    ++n;
  }
  return n;
}

TEST(TextTables, HtmlUnescapeTables) {
  const auto j = load("html_unescape_tables.json");
  int n = 0;
  for (const auto& [name, value] : j.at("html5").items()) {
    auto got = html5_entity(u32(name));
    ASSERT_TRUE(got) << name;
    EXPECT_EQ(std::u32string(*got), u32(value.get<std::string>())) << name;
    ++n;
  }
  EXPECT_EQ(n, 2231);
  EXPECT_FALSE(html5_entity(U"nosuchentity;"));
  for (const auto& [num, value] : j.at("invalid_charrefs").items()) {
    auto got = invalid_charref(std::stoul(num));
    ASSERT_TRUE(got) << num;
    EXPECT_EQ(std::u32string(*got), u32(value.get<std::string>()));
  }
  EXPECT_FALSE(invalid_charref(65));
  for (const auto& v : j.at("invalid_codepoints"))
    EXPECT_TRUE(is_invalid_codepoint(v.get<unsigned long>()));
  EXPECT_FALSE(is_invalid_codepoint(65));
}

TEST(TextTables, FtfyTables) {
  const auto j = load("ftfy_lite_tables.json");
  for (const auto& [name, value] : j.at("html_entities").items()) {
    auto got = ftfy_entity(u32(name));
    ASSERT_TRUE(got) << name;
    EXPECT_EQ(std::u32string(*got), u32(value.get<std::string>())) << name;
  }
  EXPECT_EQ(check_map(j, "c1_controls", ftfy_c1_control), 32);
  EXPECT_EQ(check_map(j, "ligatures", ftfy_ligature), 22);
  EXPECT_EQ(check_map(j, "width_map", ftfy_width), 226);
  for (const auto& v : j.at("single_quotes")) EXPECT_TRUE(ftfy_is_single_quote(v.get<char32_t>()));
  for (const auto& v : j.at("double_quotes")) EXPECT_TRUE(ftfy_is_double_quote(v.get<char32_t>()));
  for (const auto& v : j.at("removed_control_chars")) {
    EXPECT_TRUE(ftfy_is_removed_control(v.get<char32_t>()));
  }
  EXPECT_FALSE(ftfy_is_removed_control('\t'));
  EXPECT_FALSE(ftfy_is_removed_control('\n'));
  EXPECT_FALSE(ftfy_is_removed_control('\x0c'));
  EXPECT_FALSE(ftfy_is_removed_control('\r'));
  EXPECT_FALSE(ftfy_width('A'));
  EXPECT_FALSE(ftfy_ligature('f'));
}

}  // namespace
}  // namespace clipshard::text_tables

namespace clipshard::text_tables {
namespace {
// ftfy-lite skips the table lookups for ASCII; this is what makes that valid.
TEST(TextTables, AsciiFastPathAssumptions) {
  for (char32_t c = 0; c < 0x80; ++c) {
    EXPECT_FALSE(ftfy_c1_control(c) || ftfy_ligature(c) || ftfy_width(c) ||
                 ftfy_is_single_quote(c) || ftfy_is_double_quote(c))
        << static_cast<int>(c);
    const bool removed =
        (c < 0x20 && c != '\t' && c != '\n' && c != '\x0c' && c != '\r') || c == 0x7F;
    EXPECT_EQ(ftfy_is_removed_control(c), removed) << static_cast<int>(c);
  }
}
}  // namespace
}  // namespace clipshard::text_tables
