// Python string semantics the operators and the official tokenizer rely on, on UTF-8 text.
// Invalid UTF-8 is read as U+FFFD per ill-formed subpart (never an error).
#pragma once

#include <string>
#include <string_view>

namespace clipshard {

// `not text or text.strip() == ""` with Python's str.strip whitespace set (str.isspace: \t\n\v\f\r,
// U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000). The DataFlow-MM operators score such a caption 0.0.
bool python_is_blank(std::string_view utf8);

// `" ".join(text.split())` (same whitespace set): what ImageLongCLIPEvaluator feeds the tokenizer.
std::string python_split_join(std::string_view utf8);

// Python 3.11 `html.unescape`: named references (all HTML5 entities, including the legacy ones
// without ';', matched by longest prefix), decimal/hex references with html's invalid-charref
// table. A decimal reference with more than 4300 digits (where Python 3.11 raises ValueError) is
// treated as out of range (U+FFFD).
std::u32string python_html_unescape(std::u32string_view text);

}  // namespace clipshard
