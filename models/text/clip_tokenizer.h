// The CLIP text tokenizers: the official OpenAI / Long-CLIP one (`clip.tokenize`,
// `longclip.tokenize` with truncate=True) and the Hugging Face CLIPTokenizerFast one that
// CLIPProcessor uses (tests/fixtures/README.md "Tokenizers").
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/text/bpe_model.h"  // VocabularyError

namespace clipshard {

enum class TokenizerFlavor {
  // ftfy-lite, html.unescape twice, strip, collapse whitespace, str.lower (final sigma), the CLIP
  // regex, BPE. Used by OpenAI CLIP and Long-CLIP (ImageLongCLIPEvaluator).
  kOpenAI,
  // NFC, \s+ -> " ", per-character lower case; special tokens matched after normalisation; no ftfy,
  // no HTML unescaping, no strip. Used by ImageCLIPEvaluator and ImageClipFilter.
  kHuggingFaceFast,
  // open_clip's SimpleTokenizer (clean "lower"): kOpenAI's cleaning, regex and BPE, but the special
  // tokens it matches in the text are spelled <start_of_text> / <end_of_text> (same ids). Used by
  // every operator for open_clip models.
  kOpenClip,
};

struct TokenizedText {
  std::vector<int32_t> ids;  // [49406, ..., 49407], NOT padded, size <= context_length
  int n_bpe = 0;             // BPE tokens before truncation (without the 2 specials)
  bool truncated = false;    // true when ids had to be cut to fit the context
  // false when work was cut short on a huge caption (see ClipTokenizer): n_bpe is then a lower
  // bound (> kMaxCountedBpe when counting stopped there); ids and truncated stay exact.
  bool n_bpe_exact = true;
};

class ClipTokenizer {
 public:
  // Work on a huge caption is bounded (each limit sets n_bpe_exact = false):
  // counting BPE tokens stops past kMaxCountedBpe tokens;
  static constexpr int kMaxCountedBpe = 1 << 16;
  // a run of more than kMaxRunCodepoints code points without whitespace is cleaned in pieces of
  // that size (ftfy itself fixes a long line in 1,000,000-code-point segments);
  static constexpr std::size_t kMaxRunCodepoints = 1000000;
  // a single pre-token longer than kMaxWordBytes is BPE-encoded on its first kMaxWordBytes bytes
  // (as a word prefix). Those tokens are far past any context: ids are unaffected.
  static constexpr std::size_t kMaxWordBytes = 1 << 20;

  // From OpenAI's bpe_simple_vocab_16e6.txt.gz. Throws text::VocabularyError (a
  // std::runtime_error) naming the file when it cannot be read or is not that vocabulary.
  static ClipTokenizer from_bpe_file(const std::filesystem::path& gz, TokenizerFlavor flavor);
  // From a Hugging Face vocab.json + merges.txt pair; gives the same ids. Throws like above.
  static ClipTokenizer from_hf_files(const std::filesystem::path& vocab_json,
                                     const std::filesystem::path& merges_txt,
                                     TokenizerFlavor flavor);
  // The BPE vocabulary shipped with the tool: the file $CLIPSHARD_BPE_PATH names when it is set
  // (throws text::VocabularyError naming it when it is missing or wrong), else the copy of
  // models/data/bpe_simple_vocab_16e6.txt.gz built into the binary (text/embedded_vocab.h), so
  // that an installed clipshard needs no source or build tree. Loaded once per process (again
  // only when $CLIPSHARD_BPE_PATH changes). Thread-safe.
  static ClipTokenizer bundled(TokenizerFlavor flavor);
  // $CLIPSHARD_BPE_PATH when set and non-empty; nullopt means bundled() uses the built-in copy.
  static std::optional<std::filesystem::path> bpe_path_override();

  // Tokenizes UTF-8 text (invalid bytes read as U+FFFD): [49406] + bpe[:context_length-2] +
  // [49407]. Requires context_length >= 2 (throws std::invalid_argument). Thread-safe.
  TokenizedText tokenize(std::string_view utf8, int context_length) const;
  // The string the pre-token regex sees (OpenAI: cleaned and lower-cased; HF: normalised), for
  // the whole input (a whitespace-free run is cut every kMaxRunCodepoints code points).
  std::string clean_text(std::string_view utf8) const;

  int32_t start_id() const { return start_id_; }
  int32_t end_id() const { return end_id_; }
  TokenizerFlavor flavor() const { return flavor_; }
  const text::BpeModel& bpe() const { return *bpe_; }

 private:
  ClipTokenizer(std::shared_ptr<const text::BpeModel> bpe, TokenizerFlavor flavor);
  std::shared_ptr<const text::BpeModel> bpe_;
  TokenizerFlavor flavor_;
  int32_t start_id_;
  int32_t end_id_;
};

// Pads ids to `length` with `pad_id` (0 for OpenAI/LongCLIP, 49407 for HF); ids longer than
// `length` are returned unchanged.
std::vector<int32_t> pad_ids(const std::vector<int32_t>& ids, int length, int32_t pad_id);

}  // namespace clipshard
