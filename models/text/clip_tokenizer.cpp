#include "models/text/clip_tokenizer.h"

#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "models/text/embedded_vocab.h"
#include "models/text/ftfy_lite.h"
#include "models/text/pretokenizer.h"
#include "models/text/python_text.h"
#include "models/text/unicode_text.h"

namespace clipshard {
namespace {

using text::BpeModel;

using text::kEndText;
using text::kOpenClipEndText;
using text::kOpenClipStartText;
using text::kStartText;
using text::match_literal;
using text::pretokenize;
// Work unit of the streaming pipelines, in code points (a piece ends at the next safe cut after
// it).
constexpr std::size_t kPieceHint = 4096;

// Collects BPE ids: the first `keep` of them, and the count up to kMaxCountedBpe.
class TokenSink {
 public:
  TokenSink(const BpeModel& bpe, std::size_t keep) : bpe_(bpe), keep_(keep) {}

  bool add_special(int32_t id) {
    if (ids_.size() < keep_) ids_.push_back(id);
    ++n_bpe_;
    return !full();
  }
  bool add_word(std::u32string_view word) {
    bytes_.clear();
    for (char32_t c : word) {
      text::append_utf8(bytes_, c);
      if (bytes_.size() > ClipTokenizer::kMaxWordBytes) break;
    }
    scratch_.clear();
    if (bytes_.size() > ClipTokenizer::kMaxWordBytes) {
      bytes_.resize(ClipTokenizer::kMaxWordBytes);
      bpe_.encode_word(bytes_, scratch_, /*word_end=*/false);
      inexact_ = true;
    } else {
      bpe_.encode_word(bytes_, scratch_);
    }
    for (std::size_t k = 0; k < scratch_.size() && ids_.size() < keep_; ++k) {
      ids_.push_back(scratch_[k]);
    }
    n_bpe_ += scratch_.size();
    return !full();
  }
  bool full() const { return n_bpe_ > static_cast<std::size_t>(ClipTokenizer::kMaxCountedBpe); }
  bool exact() const { return !inexact_ && !full(); }
  void set_inexact() { inexact_ = true; }
  std::vector<int32_t>& ids() { return ids_; }
  std::size_t n_bpe() const { return n_bpe_; }

 private:
  const BpeModel& bpe_;
  std::size_t keep_;
  std::vector<int32_t> ids_;
  std::size_t n_bpe_ = 0;
  bool inexact_ = false;
  std::string bytes_;
  std::vector<int32_t> scratch_;
};

// --- OpenAI / Long-CLIP -------------------------------------------------------------------------
// clip.simple_tokenizer: whitespace_clean(basic_clean(text)).lower(), where
// basic_clean = ftfy.fix_text, html.unescape twice, strip; whitespace_clean = re.sub(r'\s+', ' ')
// + strip. Both unescapes, the collapse, lower() and the regex are separable after \t \n \f or
// space (no reference, run, sigma context or token crosses them), so the ftfy output is consumed
// in pieces ending there, and work stops once the result cannot change.
bool is_unescape_safe_cut(char32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f'; }

class OpenAiCleaner {
 public:
  // Cleans one piece (ending at a safe cut, or the end of the text) and returns its part of the
  // final string (lower-cased).
  std::u32string clean(std::u32string_view piece) {
    const std::u32string unescaped = python_html_unescape(python_html_unescape(piece));
    std::u32string collapsed;
    collapsed.reserve(unescaped.size());
    for (char32_t c : unescaped) {
      if (text::is_python_space(c)) {
        pending_space_ = any_;
        continue;
      }
      if (pending_space_) collapsed.push_back(' ');
      pending_space_ = false;
      any_ = true;
      collapsed.push_back(c);
    }
    return text::python_lower(collapsed);
  }

 private:
  bool pending_space_ = false;
  bool any_ = false;
};

// Runs the OpenAI cleaning over the whole input, handing each cleaned piece to sink(piece); sink
// returns false to stop. Returns false when a whitespace-free run had to be cut.
template <class Sink>
bool run_openai(std::string_view utf8, Sink&& sink) {
  bool exact = true;
  text::FtfyLiteStream ftfy(utf8, kPieceHint);
  OpenAiCleaner cleaner;
  std::u32string pending;
  while (true) {
    const std::size_t scanned = pending.size();
    if (!ftfy.next(pending)) break;
    std::size_t cut = 0;
    for (std::size_t i = pending.size(); i > scanned; --i) {
      if (is_unescape_safe_cut(pending[i - 1])) {
        cut = i;
        break;
      }
    }
    if (cut == 0) {
      if (pending.size() < ClipTokenizer::kMaxRunCodepoints) continue;
      cut = pending.size();
      exact = false;
    }
    const std::u32string cleaned = cleaner.clean(std::u32string_view(pending).substr(0, cut));
    pending.erase(0, cut);
    if (!sink(cleaned)) return exact;
  }
  if (!pending.empty()) sink(cleaner.clean(pending));
  return exact;
}

// --- Hugging Face CLIPTokenizerFast
// --------------------------------------------------------------- normalizer: NFC, Replace(\s+ -> "
// "), Lowercase; added tokens matched on the normalised text. All separable after a White_Space
// character (NFC never composes across one).
class HfNormalizer {
 public:
  std::u32string normalize(std::u32string_view piece) {
    const std::u32string composed = text::nfc(piece);
    std::u32string out;
    out.reserve(composed.size());
    for (char32_t c : composed) {
      if (text::is_unicode_white_space(c)) {
        if (!last_space_) out.push_back(' ');
        last_space_ = true;
      } else {
        last_space_ = false;
        text::append_lower_no_context(out, c);
      }
    }
    return out;
  }

 private:
  bool last_space_ = false;
};

// Returns false when a whitespace-free run had to be cut.
template <class Sink>
bool run_hf(std::string_view utf8, Sink&& sink) {
  HfNormalizer normalizer;
  std::u32string piece;
  std::size_t pos = 0;
  bool exact = true;
  while (pos < utf8.size()) {
    piece.clear();
    while (pos < utf8.size()) {
      const char32_t c = text::decode_utf8(utf8, pos);
      piece.push_back(c);
      if (piece.size() >= kPieceHint && text::is_unicode_white_space(c)) break;
      if (piece.size() >= ClipTokenizer::kMaxRunCodepoints && pos < utf8.size()) {
        exact = false;
        break;
      }
    }
    if (!sink(normalizer.normalize(piece))) return exact;
  }
  return exact;
}

// Added-token split: <|startoftext|> / <|endoftext|> (exact, leftmost), the rest through the regex.
template <class Special, class Word>
bool split_hf(std::u32string_view s, Special&& special, Word&& word) {
  std::size_t start = 0, i = 0;
  while ((i = s.find(U'<', i)) != std::u32string_view::npos) {
    std::size_t len = match_literal(s, i, kStartText, false);
    const bool is_start = len != 0;
    if (len == 0) len = match_literal(s, i, kEndText, false);
    if (len == 0) {
      ++i;
      continue;
    }
    if (!pretokenize(s.substr(start, i - start), false, word)) return false;
    if (!special(is_start)) return false;
    i += len;
    start = i;
  }
  return pretokenize(s.substr(start), false, word);
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::shared_ptr<const BpeModel> bpe, TokenizerFlavor flavor)
    : bpe_(std::move(bpe)), flavor_(flavor) {
  start_id_ = bpe_->token_id("<|startoftext|>");
  end_id_ = bpe_->token_id("<|endoftext|>");
  if (start_id_ < 0 || end_id_ < 0) {
    throw text::VocabularyError(
        "tokenizer vocabulary has no <|startoftext|>/<|endoftext|> token (not a CLIP vocabulary)");
  }
}

ClipTokenizer ClipTokenizer::from_bpe_file(const std::filesystem::path& gz,
                                           TokenizerFlavor flavor) {
  return ClipTokenizer(BpeModel::from_bpe_gz(gz), flavor);
}

ClipTokenizer ClipTokenizer::from_hf_files(const std::filesystem::path& vocab_json,
                                           const std::filesystem::path& merges_txt,
                                           TokenizerFlavor flavor) {
  return ClipTokenizer(BpeModel::from_hf_files(vocab_json, merges_txt), flavor);
}

std::optional<std::filesystem::path> ClipTokenizer::bpe_path_override() {
  if (const char* env = std::getenv("CLIPSHARD_BPE_PATH"); env != nullptr && *env != '\0') {
    return std::filesystem::path(env);
  }
  return std::nullopt;
}

ClipTokenizer ClipTokenizer::bundled(TokenizerFlavor flavor) {
  static std::mutex mutex;
  static std::shared_ptr<const BpeModel> model;
  static std::optional<std::filesystem::path> model_path;  // nullopt: the embedded copy
  const std::optional<std::filesystem::path> path = bpe_path_override();
  std::lock_guard<std::mutex> lock(mutex);
  if (!model || model_path != path) {
    if (path) {
      if (!std::filesystem::exists(*path)) {
        throw text::VocabularyError(
            "BPE vocabulary " + path->string() +
            " (from CLIPSHARD_BPE_PATH) not found: point it at bpe_simple_vocab_16e6.txt.gz, or "
            "unset it to use the copy built into clipshard");
      }
      model = BpeModel::from_bpe_gz(*path);
    } else {
      model = BpeModel::from_bpe_gz_bytes(text::embedded_bpe_gz(),
                                          "(built-in bpe_simple_vocab_16e6.txt.gz)");
    }
    model_path = path;
  }
  return ClipTokenizer(model, flavor);
}

TokenizedText ClipTokenizer::tokenize(std::string_view utf8, int context_length) const {
  if (context_length < 2) {
    throw std::invalid_argument("ClipTokenizer::tokenize: context_length must be >= 2, got " +
                                std::to_string(context_length));
  }
  TokenSink tokens(*bpe_, static_cast<std::size_t>(context_length - 2));
  const auto word = [&](std::u32string_view w) { return tokens.add_word(w); };
  bool exact = true;
  if (flavor_ == TokenizerFlavor::kOpenAI || flavor_ == TokenizerFlavor::kOpenClip) {
    const bool open_clip = flavor_ == TokenizerFlavor::kOpenClip;
    const std::u32string_view start_text = open_clip ? kOpenClipStartText : kStartText;
    const std::u32string_view end_text = open_clip ? kOpenClipEndText : kEndText;
    exact = run_openai(utf8, [&](std::u32string_view cleaned) {
      return pretokenize(
          cleaned, true,
          [&](std::u32string_view w) {
            // The official encoders' caches map the two special strings to themselves.
            if (w == start_text) return tokens.add_special(start_id_);
            if (w == end_text) return tokens.add_special(end_id_);
            return tokens.add_word(w);
          },
          start_text, end_text);
    });
  } else {
    exact = run_hf(utf8, [&](std::u32string_view normalized) {
      return split_hf(
          normalized,
          [&](bool is_start) { return tokens.add_special(is_start ? start_id_ : end_id_); }, word);
    });
  }
  TokenizedText result;
  result.n_bpe = static_cast<int>(tokens.n_bpe());
  result.n_bpe_exact = exact && tokens.exact();
  result.truncated = tokens.n_bpe() + 2 > static_cast<std::size_t>(context_length);
  result.ids.reserve(tokens.ids().size() + 2);
  result.ids.push_back(start_id_);
  result.ids.insert(result.ids.end(), tokens.ids().begin(), tokens.ids().end());
  result.ids.push_back(end_id_);
  return result;
}

std::string ClipTokenizer::clean_text(std::string_view utf8) const {
  std::string out;
  const auto append = [&](std::u32string_view piece) {
    for (char32_t c : piece) text::append_utf8(out, c);
    return true;
  };
  if (flavor_ == TokenizerFlavor::kOpenAI || flavor_ == TokenizerFlavor::kOpenClip) {
    run_openai(utf8, append);
  } else {
    run_hf(utf8, append);
  }
  return out;
}

std::vector<int32_t> pad_ids(const std::vector<int32_t>& ids, int length, int32_t pad_id) {
  std::vector<int32_t> out(ids);
  if (length > 0 && out.size() < static_cast<std::size_t>(length)) {
    out.resize(static_cast<std::size_t>(length), pad_id);
  }
  return out;
}

}  // namespace clipshard
