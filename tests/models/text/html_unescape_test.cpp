// python_html_unescape against Python 3.11.2's html.unescape (expected values printed by it).
#include <gtest/gtest.h>

#include "models/text/python_text.h"
#include "models/text/unicode_text.h"

namespace clipshard {
namespace {

std::string unescape(const std::string& s) {
  return text::u32_to_utf8(python_html_unescape(text::utf8_to_u32(s)));
}

TEST(HtmlUnescape, NamedReferences) {
  EXPECT_EQ(unescape("&amp;"), "&");
  EXPECT_EQ(unescape("&AMP;"), "&");
  EXPECT_EQ(unescape("caf&eacute;"), "caf\u00e9");
  EXPECT_EQ(unescape("&acE;"), "\u223e\u0333");  // two code points
  EXPECT_EQ(unescape("&ThinSpace;"), "\u2009");
  EXPECT_EQ(unescape("&quot;x&quot"), "\"x\"");
  EXPECT_EQ(unescape("&unknown;"), "&unknown;");
  EXPECT_EQ(unescape("&EACUTE;"), "&EACUTE;");  // not HTML5 (ftfy's table has it, html's not)
  EXPECT_EQ(unescape("& amp;"), "& amp;");
  EXPECT_EQ(unescape("&&amp;"), "&&");
}

TEST(HtmlUnescape, LegacyNamesWithoutSemicolonMatchByLongestPrefix) {
  EXPECT_EQ(unescape("&amp"), "&");
  EXPECT_EQ(unescape("&ampx"), "&x");
  EXPECT_EQ(unescape("&notit;"), "\u00acit;");
  EXPECT_EQ(unescape("&notin;"), "\u2209");
  EXPECT_EQ(unescape("&not"), "\u00ac");
  EXPECT_EQ(unescape("&no"), "&no");
  EXPECT_EQ(unescape("&lt&gt"), "<>");
  EXPECT_EQ(unescape("&eacute&eacute;"), "\u00e9\u00e9");
  EXPECT_EQ(unescape("&Eacute"), "\u00c9");
  EXPECT_EQ(unescape("&lt\u00e9"), "<\u00e9");
  EXPECT_EQ(unescape("&\u00e9;"), "&\u00e9;");
  // A name is at most 32 characters: the rest is plain text.
  const std::string long_name = "&" + std::string(40, 'a') + ";";
  EXPECT_EQ(unescape(long_name), long_name);
}

TEST(HtmlUnescape, NumericReferences) {
  EXPECT_EQ(unescape("&#65;"), "A");
  EXPECT_EQ(unescape("&#65"), "A");
  EXPECT_EQ(unescape("&#0065;"), "A");
  EXPECT_EQ(unescape("&#x41;"), "A");
  EXPECT_EQ(unescape("&#X41"), "A");
  EXPECT_EQ(unescape("&#x1F600;"), "\U0001F600");
  EXPECT_EQ(unescape("&#x;"), "&#x;");
  EXPECT_EQ(unescape("&#;"), "&#;");
  EXPECT_EQ(unescape("&#"), "&#");
  EXPECT_EQ(unescape("&#9;"), "\t");
}

TEST(HtmlUnescape, InvalidCharrefsAndCodepoints) {
  EXPECT_EQ(unescape("&#0;"), "\ufffd");
  EXPECT_EQ(unescape("&#13;"), "\r");
  EXPECT_EQ(unescape("&#128;"), "\u20ac");
  EXPECT_EQ(unescape("&#x80;"), "\u20ac");
  EXPECT_EQ(unescape("&#xD800;"), "\ufffd");
  EXPECT_EQ(unescape("&#1114112;"), "\ufffd");
  EXPECT_EQ(unescape("&#99999999999999999999;"), "\ufffd");
  EXPECT_EQ(unescape("&#65534;"), "");
  EXPECT_EQ(unescape("&#1;"), "");
  EXPECT_EQ(unescape("&#" + std::string(5000, '1') + ";"), "\ufffd");  // Python raises here
}

TEST(HtmlUnescape, OneLevelPerCall) {
  EXPECT_EQ(unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(unescape("&#38;amp;"), "&amp;");
  EXPECT_EQ(unescape(unescape("&amp;amp;amp;")), "&amp;");
}

}  // namespace
}  // namespace clipshard
