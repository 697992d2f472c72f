#include "models/text/python_text.h"

#include "models/text/text_tables.h"
#include "models/text/unicode_text.h"

namespace clipshard {

bool python_is_blank(std::string_view utf8) {
  for (std::size_t pos = 0; pos < utf8.size();) {
    if (!text::is_python_space(text::decode_utf8(utf8, pos))) return false;
  }
  return true;
}

std::string python_split_join(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  bool pending_space = false;
  for (std::size_t pos = 0; pos < utf8.size();) {
    const char32_t c = text::decode_utf8(utf8, pos);
    if (text::is_python_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    text::append_utf8(out, c);
  }
  return out;
}

namespace {

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_hex(char32_t c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// Characters of the named-reference class [^\t\n\f <&#;].
bool is_name_char(char32_t c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
         c != ';';
}

// html._replace_charref for a numeric reference whose value saturates at kTooLarge.
constexpr unsigned long kTooLarge = 0x110000;
void append_numeric(std::u32string& out, unsigned long num) {
  if (auto v = text_tables::invalid_charref(num)) {
    out.append(*v);
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
  } else if (!text_tables::is_invalid_codepoint(num)) {
    out.push_back(static_cast<char32_t>(num));
  }
}

}  // namespace

std::u32string python_html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t amp = s.find(U'&', i);
    if (amp == std::u32string_view::npos) {
      out.append(s.substr(i));
      break;
    }
    out.append(s.substr(i, amp - i));
    std::size_t j = amp + 1;
    if (j < s.size() && s[j] == '#') {
      // '#[0-9]+;?' then '#[xX][0-9a-fA-F]+;?'
      std::size_t k = j + 1;
      unsigned long num = 0;
      bool ok = false;
      if (k < s.size() && is_ascii_digit(s[k])) {
        const std::size_t start = k;
        while (k < s.size() && is_ascii_digit(s[k])) {
          num = num >= kTooLarge ? kTooLarge : num * 10 + (s[k] - '0');
          ++k;
        }
        if (k - start > 4300) num = kTooLarge;  // Python 3.11 raises here (int_max_str_digits)
        ok = true;
      } else if (k + 1 < s.size() && (s[k] == 'x' || s[k] == 'X') && is_ascii_hex(s[k + 1])) {
        ++k;
        while (k < s.size() && is_ascii_hex(s[k])) {
          const char32_t c = s[k];
          const unsigned long d = is_ascii_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
          num = num >= kTooLarge ? kTooLarge : num * 16 + d;
          ++k;
        }
        ok = true;
      }
      if (!ok) {  // '&#' followed by neither: no match here
        out.push_back('&');
        i = amp + 1;
        continue;
      }
      if (num > kTooLarge) num = kTooLarge;
      if (k < s.size() && s[k] == ';') ++k;
      append_numeric(out, num);
      i = k;
      continue;
    }
    // '[^\t\n\f <&#;]{1,32};?'
    std::size_t k = j;
    while (k < s.size() && k - j < 32 && is_name_char(s[k])) ++k;
    if (k == j) {
      out.push_back('&');
      i = amp + 1;
      continue;
    }
    if (k < s.size() && s[k] == ';') ++k;
    const std::u32string_view name = s.substr(j, k - j);
    i = k;
    if (auto v = text_tables::html5_entity(name)) {
      out.append(*v);
      continue;
    }
    bool replaced = false;
    for (std::size_t x = name.size() - 1; x >= 2 && x < name.size(); --x) {
      if (auto v = text_tables::html5_entity(name.substr(0, x))) {
        out.append(*v);
        out.append(name.substr(x));
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.push_back('&');
      out.append(name);
    }
  }
  return out;
}

}  // namespace clipshard
