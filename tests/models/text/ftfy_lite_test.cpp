// ftfy-lite rules (tests/fixtures/FTFY_LITE.md) one by one, the fixpoint loop, the '<' rule and the
// streaming split.
#include "models/text/ftfy_lite.h"

#include <gtest/gtest.h>

#include <random>

#include "models/text/unicode_text.h"

namespace clipshard::text {
namespace {

std::string fix(const std::string& s) { return u32_to_utf8(ftfy_fix_text(utf8_to_u32(s))); }

TEST(FtfyLite, UnescapeHtml) {
  EXPECT_EQ(fix("caf&eacute; &EACUTE;"), "caf\u00e9 \u00c9");  // ftfy's upper-case variants
  EXPECT_EQ(fix("it&#x2019;s"), "it's");                       // then uncurled
  EXPECT_EQ(fix("&#12ab;"), "&#12ab;");  // html.unescape leaves a ';' -> unchanged
  EXPECT_EQ(fix("&amp"), "&amp");        // needs the ';' here (html.unescape would not)
  EXPECT_EQ(fix("&unknown;"), "&unknown;");
  EXPECT_EQ(fix("&" + std::string(25, 'a') + ";"), "&" + std::string(25, 'a') + ";");
}

TEST(FtfyLite, RepeatsUntilNothingChanges) {
  EXPECT_EQ(fix("rock &amp;amp;amp; roll"), "rock & roll");
  EXPECT_EQ(fix("&am\x01p;"), "&");  // removing the control char makes an entity
}

TEST(FtfyLite, NestingDepthIsBounded) {
  std::string nested = "&";
  for (int i = 0; i < 100; ++i) nested += "amp;";
  // Each pass removes one level; the loop stops after kFtfyMaxPasses passes.
  std::string expected = "&";
  for (int i = kFtfyMaxPasses; i < 100; ++i) expected += "amp;";
  EXPECT_EQ(fix(nested), expected);
  std::string huge = "&";
  while (huge.size() < 1000000) huge += "amp;";
  EXPECT_EQ(fix(huge).size(), huge.size() - 4 * kFtfyMaxPasses);
}

TEST(FtfyLite, LessThanTurnsUnescapingOffForThatAndLaterLines) {
  EXPECT_EQ(fix("a &amp; b\nc &amp; d < e\nf &amp; g"), "a & b\nc &amp; d < e\nf &amp; g");
  EXPECT_EQ(fix("a &amp;amp; < c"), "a &amp;amp; < c");
  // '<' made by unescaping does not count: the flag is decided before the line is fixed.
  EXPECT_EQ(fix("&lt;b&gt;bold&lt;/b&gt;\nx &amp; y"), "<b>bold</b>\nx & y");
}

TEST(FtfyLite, C1ControlsLigaturesWidthQuotes) {
  EXPECT_EQ(fix("smart\u0093quotes\u0094"), "smart\"quotes\"");
  EXPECT_EQ(fix("and\u0085ellipsis \u0080uro"), "and\u2026ellipsis \u20acuro");
  EXPECT_EQ(fix("\u0081"), "\u0081");  // undefined in Windows-1252: unchanged
  EXPECT_EQ(fix("\ufb01sh \ufb05 \ufb06 \u0149"), "fish \u017ft st 'n");
  EXPECT_EQ(fix("\uff2c\uff2f\uff35\uff24\u3000\uff01 \uff11"), "LOUD ! 1");
  EXPECT_EQ(fix("\uff76\uff9e"), "\u30ac");  // half-width ka + voiced mark -> NFC ga
  EXPECT_EQ(fix("\u2018x\u2019 \u201cy\u201d \u201a\u201b\u201e\u201f \u02bc \u2032\u2033"),
            "'x' \"y\" ''\"\" ' \u2032\u2033");
}

TEST(FtfyLite, LineBreaksEscapesControlsNfc) {
  EXPECT_EQ(fix("a\r\nb\rc\u2028d\u2029e"), "a\nb\nc\nd\ne");
  EXPECT_EQ(fix("\x1b[31mred\x1b[0m text \x1b[1;2Hx"), "red text x");
  EXPECT_EQ(fix("\x1b[\u0663m!"), "!");  // `\d` is Unicode in Python's re
  EXPECT_EQ(fix("\x1b[31"), "[31");      // not an escape; ESC itself is a removed control
  EXPECT_EQ(fix(std::string("a\0b\x0b"
                            "c\x0c"
                            "d\x7f"
                            "e\ufeff\u206a\ufffcf\tg",
                            21)),
            "abc\x0c"
            "def\tg");
  EXPECT_EQ(fix("e\u0301"), "\u00e9");
}

// The stream's pieces (cut after spaces, at line ends and at the segment limit) concatenate to
// fix_text of the whole input, whatever sits at the cuts.
TEST(FtfyLite, StreamEqualsWholeText) {
  const char* parts[] = {"&amp;",  "amp;",   " ",      "  ",     "\n",     "<",      "&lt;",
                         "\u0093", "\ufb01", "\uff76", "\uff9e", "\u2019", "\r",     "\r\n",
                         "\x1b[",  "31m",    "\x01",   "e",      "\u0301", "\u03a3", "word",
                         "&#x41;", "&#",     "12ab;",  "\u3000"};
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    const int n = 50 + static_cast<int>(rng() % 400);
    for (int i = 0; i < n; ++i) text += parts[rng() % (sizeof(parts) / sizeof(parts[0]))];
    std::u32string streamed;
    FtfyLiteStream stream(text, 1 + rng() % 16);
    while (stream.next(streamed)) {
    }
    ASSERT_EQ(u32_to_utf8(streamed), fix(text)) << text;
  }
}

TEST(FtfyLite, LongLineIsFixedInSegments) {
  // ftfy's max_decode_length: an entity that straddles the 1,000,000th code point is not unescaped.
  std::string text(kFtfyMaxSegment - 2, 'a');
  text += "&amp; x";
  const std::string fixed = fix(text);
  EXPECT_EQ(fixed.substr(kFtfyMaxSegment - 2), "&amp; x");
  std::string text2(kFtfyMaxSegment - 10, 'a');
  text2 += "&amp; x";
  EXPECT_EQ(fix(text2).substr(kFtfyMaxSegment - 10), "& x");
}

}  // namespace
}  // namespace clipshard::text
