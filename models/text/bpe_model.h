// Byte-level BPE of the CLIP tokenizers: vocabulary, merge ranks and a thread-safe per-word cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace clipshard::text {

// A vocabulary file that cannot be read or does not describe a CLIP BPE vocabulary.
class VocabularyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BpeModel {
 public:
  // OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip): ids = 256 byte symbols in GPT-2
  // bytes_to_unicode order, the same with "</w>", the 48,894 merges (lines 1..48894), then
  // <|startoftext|>, <|endoftext|>. Throws VocabularyError naming the file.
  static std::shared_ptr<const BpeModel> from_bpe_gz(const std::filesystem::path& gz);
  // The same from the bytes of such a .gz file held in memory (the copy embedded in the binary);
  // `name` stands for the file in error messages.
  static std::shared_ptr<const BpeModel> from_bpe_gz_bytes(std::string_view gz,
                                                           const std::string& name);
  // A Hugging Face vocab.json + merges.txt pair. Throws VocabularyError naming the file.
  static std::shared_ptr<const BpeModel> from_hf_files(const std::filesystem::path& vocab_json,
                                                       const std::filesystem::path& merges_txt);

  // Appends the ids of one pre-token given as its UTF-8 bytes (non-empty): byte-level symbols, the
  // last one with "</w>", merged by rank exactly as clip.simple_tokenizer.SimpleTokenizer.bpe.
  // word_end = false encodes a prefix of a longer word (no "</w>"). Thread-safe; results of short
  // words are cached.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out, bool word_end = true) const;

  // Id of a vocabulary string (e.g. "<|endoftext|>"); -1 when absent.
  int32_t token_id(std::string_view token) const;
  std::size_t vocab_size() const;
  std::size_t merge_count() const;

  // The two merge loops, exposed for tests: `symbols` are ids; the result is the merged ids.
  // reference: the official loop (lowest-ranked pair, merge all its occurrences left to right,
  // repeat), O(n^2); heap: the same rounds driven by a priority queue, O(n log n) (it hands words
  // over 32768 symbols to merge_buckets); buckets: a bucket queue over ranks, ~O(n + ranks).
  std::vector<int32_t> merge_reference(std::vector<int32_t> symbols) const;
  std::vector<int32_t> merge_heap(const std::vector<int32_t>& symbols) const;
  std::vector<int32_t> merge_buckets(const std::vector<int32_t>& symbols) const;
  // The initial symbols of a word (byte ids, the last with "</w>" when word_end).
  std::vector<int32_t> initial_symbols(std::string_view bytes, bool word_end = true) const;

  ~BpeModel();
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

 private:
  struct Impl;
  // The decompressed vocabulary text of from_bpe_gz/from_bpe_gz_bytes.
  static std::shared_ptr<const BpeModel> from_bpe_text(const std::string& data,
                                                       const std::string& name);
  explicit BpeModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipshard::text
