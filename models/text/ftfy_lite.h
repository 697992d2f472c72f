// ftfy-lite: ftfy 6.3.1's `fix_text` with its default configuration minus the mojibake repair, as
// the golden fixtures were made (rules: tests/fixtures/FTFY_LITE.md; tables compiled in from
// tests/fixtures/text/ftfy_lite_tables.json). Input is assumed to be valid Unicode (invalid UTF-8
// has already become U+FFFD).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace clipshard::text {

// ftfy's `max_decode_length`: a line longer than this many code points is fixed in segments.
inline constexpr std::size_t kFtfyMaxSegment = 1000000;

// The whole `fix_text` (for tests and clean_text).
std::u32string ftfy_fix_text(std::u32string_view text);

// One pass of the nine ftfy-lite steps over (part of) a segment.
std::u32string ftfy_pass(std::u32string_view text, bool unescape_html);
// Passes until a pass changes nothing (ftfy's fix_and_explain loop), at most kFtfyMaxPasses: each
// nesting level of escapes ("&amp;amp;...") costs one pass, so without a bound a crafted caption
// costs O(length^2) (ftfy itself would run for hours); real text needs a handful.
inline constexpr int kFtfyMaxPasses = 64;
std::u32string ftfy_fix_segment(std::u32string_view text, bool unescape_html);

// fix_text in pieces, so that a caller can stop early: next() appends the fixed text of the next
// piece of the input to `out` and returns false once the input is exhausted. The concatenation of
// all pieces equals ftfy_fix_text of the whole input. Pieces end after an ASCII space (every step
// is separable there), at a line end or at a segment limit, so each piece's work is bounded.
class FtfyLiteStream {
 public:
  explicit FtfyLiteStream(std::string_view utf8, std::size_t piece_hint = 4096)
      : utf8_(utf8), piece_hint_(piece_hint) {}
  bool next(std::u32string& out);

 private:
  std::string_view utf8_;
  std::size_t piece_hint_;
  std::size_t byte_pos_ = 0;
  std::u32string segment_;  // decoded current segment
  std::size_t seg_pos_ = 0;
  bool unescape_ = true;
};

}  // namespace clipshard::text
