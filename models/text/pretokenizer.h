// The pre-token split of the CLIP tokenizers (internal to models/text; a header so that the
// tokenizer inlines it and tests can check it against the `regex` module).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "models/text/unicode_text.h"

namespace clipshard::text {

inline constexpr std::u32string_view kStartText = U"<|startoftext|>";
inline constexpr std::u32string_view kEndText = U"<|endoftext|>";
// open_clip's SimpleTokenizer spells them differently (same ids).
inline constexpr std::u32string_view kOpenClipStartText = U"<start_of_text>";
inline constexpr std::u32string_view kOpenClipEndText = U"<end_of_text>";

// Character equality of the official pattern, compiled with re.IGNORECASE by the `regex` module:
// a lower-case ASCII literal also matches its upper case and, for 's'/'k', U+017F / U+212A.
inline bool literal_matches(char32_t c, char32_t lit, bool ignore_case) {
  if (c == lit) return true;
  if (!ignore_case) return false;
  if (lit >= 'a' && lit <= 'z' && c == lit - 32) return true;
  return (lit == 's' && c == 0x17F) || (lit == 'k' && c == 0x212A);
}

inline std::size_t match_literal(std::u32string_view s, std::size_t i, std::u32string_view lit,
                                 bool ignore_case) {
  if (s.size() - i < lit.size()) return 0;
  for (std::size_t k = 0; k < lit.size(); ++k) {
    if (!literal_matches(s[i + k], lit[k], ignore_case)) return 0;
  }
  return lit.size();
}

// Splits like `regex.findall(pat, text)` with
// pat = <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// openai: the official re.IGNORECASE pattern: case-insensitive literals ('ſ matches 's), and
// U+0345 (whose other cases are letters) matches none of the classes, so it separates tokens like
// whitespace (measured with the `regex` module over all code points); otherwise the case-sensitive
// Hugging Face split (whose special tokens were split off before).
// emit(token) returns false to stop; returns false when stopped. `start_text` / `end_text`: the
// special-token literals of the pattern (openai only; open_clip's differ).
template <class Emit>
bool pretokenize(std::u32string_view s, bool openai, Emit&& emit,
                 std::u32string_view start_text = kStartText,
                 std::u32string_view end_text = kEndText) {
  static constexpr std::u32string_view kContractions[] = {U"'s", U"'t",  U"'re", U"'ve",
                                                          U"'m", U"'ll", U"'d"};
  const auto letter = [](char32_t c) { return text::is_letter(c); };
  const auto separator = [openai](char32_t c) {
    return text::is_unicode_white_space(c) || (openai && c == 0x345);
  };
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const char32_t c = s[i];
    std::size_t len = 0;
    if (openai && c == '<') {
      len = match_literal(s, i, start_text, true);
      if (len == 0) len = match_literal(s, i, end_text, true);
    }
    if (len == 0 && c == '\'') {
      for (std::u32string_view lit : kContractions) {
        if ((len = match_literal(s, i, lit, openai)) != 0) break;
      }
    }
    if (len == 0) {
      std::size_t j = i;
      if (letter(c)) {
        while (j < n && letter(s[j])) ++j;
      } else if (text::is_number(c)) {
        j = i + 1;
      } else if (!separator(c)) {
        while (j < n && !separator(s[j]) && !letter(s[j]) && !text::is_number(s[j])) {
          ++j;
        }
      }
      len = j - i;
    }
    if (len == 0) {  // a separator: not part of any token
      ++i;
      continue;
    }
    if (!emit(s.substr(i, len))) return false;
    i += len;
  }
  return true;
}

// All pre-tokens of s (for tests).
inline std::vector<std::u32string> pretokenize_all(std::u32string_view s, bool openai) {
  std::vector<std::u32string> out;
  pretokenize(s, openai, [&](std::u32string_view t) {
    out.emplace_back(t);
    return true;
  });
  return out;
}

}  // namespace clipshard::text
