// Code-point level helpers shared by the tokenizers: UTF-8 decoding that never fails, Python's and
// Unicode's whitespace sets, Python's str.lower and the character classes of the CLIP regex.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace clipshard::text {

// Decodes the code point that starts at utf8[pos] and advances pos past it. Invalid UTF-8 (stray
// continuation bytes, overlong forms, surrogates, truncated sequences, > U+10FFFF) yields U+FFFD
// for each maximal ill-formed subpart, as Python's `bytes.decode("utf-8", "replace")` does.
// Requires pos < utf8.size().
char32_t decode_utf8(std::string_view utf8, std::size_t& pos);
// Whole-string versions of the above / the reverse.
std::u32string utf8_to_u32(std::string_view utf8);
void append_utf8(std::string& out, char32_t c);
std::string u32_to_utf8(std::u32string_view text);

// Python's str.isspace (what str.strip()/str.split() and `re` `\s` use): \t\n\v\f\r,
// U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000.
bool is_python_space(char32_t c);
// Unicode White_Space (Oniguruma's and the `regex` module's `\s`): Python's set minus
// U+001C..U+001F.
bool is_unicode_white_space(char32_t c);

// Python's str.lower: full lower-case mapping (U+0130 -> "i\u0307") and the Final_Sigma rule for
// U+03A3 (ς when preceded by a cased letter and not followed by one, case-ignorables skipped).
std::u32string python_lower(std::u32string_view text);
// Lower-cases one character with its full mapping and no context (Rust's char::to_lowercase, as the
// Hugging Face `Lowercase` normalizer does): Σ is always σ. Appends to out.
void append_lower_no_context(std::u32string& out, char32_t c);

// General category L* / N*.
bool is_letter(char32_t c);
bool is_number(char32_t c);

// Unicode NFC (ICU). Text made only of code points below U+0300 is returned unchanged without
// calling ICU (no such character composes or decomposes under NFC).
std::u32string nfc(std::u32string_view text);

}  // namespace clipshard::text
