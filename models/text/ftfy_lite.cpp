#include "models/text/ftfy_lite.h"

#include <unicode/uchar.h>

#include "models/text/python_text.h"
#include "models/text/text_tables.h"
#include "models/text/unicode_text.h"

namespace clipshard::text {
namespace {

bool is_entity_char(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Step 1: every match of &#?[0-9A-Za-z]{1,24}; (ftfy.fixes.unescape_html / _unescape_fixup).
void unescape_html(std::u32string_view s, std::u32string& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t amp = s.find(U'&', i);
    if (amp == std::u32string_view::npos) {
      out.append(s.substr(i));
      return;
    }
    out.append(s.substr(i, amp - i));
    std::size_t j = amp + 1;
    if (j < s.size() && s[j] == '#') ++j;
    std::size_t k = j;
    while (k < s.size() && k - j < 25 && is_entity_char(s[k])) ++k;
    const std::size_t run = k - j;
    if (run < 1 || run > 24 || k >= s.size() || s[k] != ';') {
      out.push_back('&');
      i = amp + 1;
      continue;
    }
    const std::u32string_view match = s.substr(amp, k + 1 - amp);
    i = k + 1;
    if (auto v = text_tables::ftfy_entity(match)) {
      out.append(*v);
    } else if (match.size() > 1 && match[1] == '#') {
      const std::u32string unescaped = python_html_unescape(match);
      out.append(unescaped.find(U';') == std::u32string::npos ? std::u32string_view(unescaped)
                                                              : match);
    } else {
      out.append(match);
    }
  }
}

// Steps 4 and 5 on one character.
void width_and_quotes(char32_t c, std::u32string& out) {
  if (auto w = text_tables::ftfy_width(c)) {
    for (char32_t d : *w) {
      if (text_tables::ftfy_is_single_quote(d)) {
        out.push_back('\'');
      } else if (text_tables::ftfy_is_double_quote(d)) {
        out.push_back('"');
      } else {
        out.push_back(d);
      }
    }
  } else if (text_tables::ftfy_is_single_quote(c)) {
    out.push_back('\'');
  } else if (text_tables::ftfy_is_double_quote(c)) {
    out.push_back('"');
  } else {
    out.push_back(c);
  }
}

// Steps 3..5 on one character.
void ligatures_width_quotes(char32_t c, std::u32string& out) {
  if (auto l = text_tables::ftfy_ligature(c)) {
    for (char32_t d : *l) width_and_quotes(d, out);
  } else {
    width_and_quotes(c, out);
  }
}

bool is_decimal_digit(char32_t c) {  // Python `re` \d on str: Unicode Nd
  if (c < 0x80) return c >= '0' && c <= '9';
  return u_charType(static_cast<UChar32>(c)) == U_DECIMAL_DIGIT_NUMBER;
}
bool is_ascii_letter(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

std::u32string ftfy_pass(std::u32string_view text, bool unescape) {
  std::u32string a;
  a.reserve(text.size());
  if (unescape) {
    unescape_html(text, a);
  } else {
    a.assign(text);
  }
  // Steps 2..5: per-character maps applied in order.
  std::u32string b;
  b.reserve(a.size());
  for (char32_t c : a) {
    if (c < 0x80) {  // no ASCII character is in the tables of steps 2..5
      b.push_back(c);
    } else if (auto v = text_tables::ftfy_c1_control(c)) {
      for (char32_t d : *v) ligatures_width_quotes(d, b);
    } else {
      ligatures_width_quotes(c, b);
    }
  }
  // Step 6: fix_line_breaks.
  a.clear();
  for (std::size_t i = 0; i < b.size(); ++i) {
    const char32_t c = b[i];
    if (c == '\r') {
      if (i + 1 < b.size() && b[i + 1] == '\n') ++i;
      a.push_back('\n');
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      a.push_back('\n');
    } else {
      a.push_back(c);
    }
  }
  // Step 7: remove_terminal_escapes, \x1b\[((?:\d|;)*)([a-zA-Z]).
  b.clear();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == 0x1B && i + 1 < a.size() && a[i + 1] == '[') {
      std::size_t k = i + 2;
      while (k < a.size() && (a[k] == ';' || is_decimal_digit(a[k]))) ++k;
      if (k < a.size() && is_ascii_letter(a[k])) {
        i = k;
        continue;
      }
    }
    b.push_back(a[i]);
  }
  // Step 8: remove_control_chars.
  a.clear();
  for (char32_t c : b) {
    const bool removed =
        c < 0x80 ? (c < 0x20 && c != '\t' && c != '\n' && c != '\x0c' && c != '\r') || c == 0x7F
                 : text_tables::ftfy_is_removed_control(c);
    if (!removed) a.push_back(c);
  }
  // Step 9: NFC.
  return nfc(a);
}

std::u32string ftfy_fix_segment(std::u32string_view text, bool unescape) {
  std::u32string current(text);
  for (int pass = 0; pass < kFtfyMaxPasses; ++pass) {
    std::u32string next = ftfy_pass(current, unescape);
    if (next == current) break;
    current.swap(next);
  }
  return current;
}

bool FtfyLiteStream::next(std::u32string& out) {
  if (seg_pos_ >= segment_.size()) {
    if (byte_pos_ >= utf8_.size()) return false;
    // ftfy.fix_text: a segment ends after '\n' or after max_decode_length code points; a segment
    // that contains '<' turns HTML unescaping off for itself and every later segment.
    segment_.clear();
    seg_pos_ = 0;
    while (byte_pos_ < utf8_.size() && segment_.size() < kFtfyMaxSegment) {
      const char32_t c = decode_utf8(utf8_, byte_pos_);
      segment_.push_back(c);
      if (c == '\n') break;
    }
    if (unescape_ && segment_.find(U'<') != std::u32string::npos) unescape_ = false;
  }
  std::size_t end = segment_.size();
  if (segment_.size() - seg_pos_ > piece_hint_) {
    const std::size_t space = segment_.find(U' ', seg_pos_ + piece_hint_);
    if (space != std::u32string::npos) end = space + 1;
  }
  out.append(
      ftfy_fix_segment(std::u32string_view(segment_).substr(seg_pos_, end - seg_pos_), unescape_));
  seg_pos_ = end;
  return true;
}

std::u32string ftfy_fix_text(std::u32string_view text) {
  const std::string utf8 = u32_to_utf8(text);
  FtfyLiteStream stream(utf8, kFtfyMaxSegment);
  std::u32string out;
  while (stream.next(out)) {
  }
  return out;
}

}  // namespace clipshard::text
