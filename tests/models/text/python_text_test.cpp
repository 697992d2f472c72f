// Python string helpers: str.strip/str.split whitespace, str.lower, UTF-8 replacement decoding.
#include "models/text/python_text.h"

#include <gtest/gtest.h>

#include "models/text/unicode_text.h"

namespace clipshard {
namespace {

TEST(PythonText, IsBlankUsesPythonWhitespace) {
  EXPECT_TRUE(python_is_blank(""));
  EXPECT_TRUE(python_is_blank(" \t\n\v\f\r"));
  EXPECT_TRUE(python_is_blank("\x1c\x1d\x1e\x1f"));
  EXPECT_TRUE(python_is_blank("\u0085\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"));
  EXPECT_FALSE(python_is_blank("\u200b"));  // zero width space is not whitespace
  EXPECT_FALSE(python_is_blank("\ufeff"));
  EXPECT_FALSE(python_is_blank("\u180e"));
  EXPECT_FALSE(python_is_blank(" a "));
  EXPECT_FALSE(python_is_blank(std::string("\0", 1)));
  EXPECT_FALSE(python_is_blank("\xff"));  // U+FFFD after decoding
}

TEST(PythonText, SplitJoin) {
  EXPECT_EQ(python_split_join(""), "");
  EXPECT_EQ(python_split_join("   "), "");
  EXPECT_EQ(python_split_join("  a\tb\n\nc  "), "a b c");
  EXPECT_EQ(python_split_join("field\x1csep\x1drec"), "field sep rec");
  EXPECT_EQ(python_split_join("a\u0085b\u3000c\u00a0d"), "a b c d");
  EXPECT_EQ(python_split_join("a\u200bb"), "a\u200bb");
  EXPECT_EQ(python_split_join("x\xffy z"), "x\ufffdy z");
}

std::string lower(const std::string& s) {
  return text::u32_to_utf8(text::python_lower(text::utf8_to_u32(s)));
}

TEST(PythonText, LowerFullMappingAndFinalSigma) {
  EXPECT_EQ(lower("HeLLo"), "hello");
  EXPECT_EQ(lower("\u0130stanbul"), "i\u0307stanbul");
  EXPECT_EQ(lower("\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3"),
            "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2");
  EXPECT_EQ(lower("\u03a3"), "\u03c3");        // no cased letter before
  EXPECT_EQ(lower("A\u03a3"), "a\u03c2");      // final
  EXPECT_EQ(lower("A\u03a3B"), "a\u03c3b");    // followed by a cased letter
  EXPECT_EQ(lower("A\u03a3'B"), "a\u03c3'b");  // ' is case-ignorable: still followed
  EXPECT_EQ(lower("A\u03a3 B"), "a\u03c2 b");
  EXPECT_EQ(lower("A\u0301\u03a3"), "a\u0301\u03c2");  // ignorable before
}

TEST(PythonText, Utf8ReplacementPerMaximalSubpart) {
  // Expected strings from Python's bytes.decode("utf-8", "replace").
  EXPECT_EQ(text::utf8_to_u32("\xed\xa0\x80"), U"\ufffd\ufffd\ufffd");  // surrogate
  EXPECT_EQ(text::utf8_to_u32("\xe2\x82"), U"\ufffd");                  // truncated
  EXPECT_EQ(text::utf8_to_u32("\xe2\x82x"), U"\ufffdx");
  EXPECT_EQ(text::utf8_to_u32("\xc0\xaf"), U"\ufffd\ufffd");  // overlong
  EXPECT_EQ(text::utf8_to_u32("\xf4\x90\x80\x80"), U"\ufffd\ufffd\ufffd\ufffd");
  EXPECT_EQ(text::utf8_to_u32("\xf0\x9f\x98\x80"), U"\U0001F600");
  EXPECT_EQ(text::utf8_to_u32("\x80\xbf"), U"\ufffd\ufffd");
  EXPECT_EQ(text::u32_to_utf8(U"\u00e9\u4e00\U0001F600"), "\u00e9\u4e00\U0001F600");
}

}  // namespace
}  // namespace clipshard
