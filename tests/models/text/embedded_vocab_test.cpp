// The BPE vocabulary built into the binary (models/text/embedded_vocab.h) and the
// $CLIPSHARD_BPE_PATH override of ClipTokenizer::bundled().
#include "models/text/embedded_vocab.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/text/clip_tokenizer.h"

namespace clipshard {
namespace {

const std::filesystem::path kVocabFile = "models/data/bpe_simple_vocab_16e6.txt.gz";

// Restores CLIPSHARD_BPE_PATH when a test that sets it ends.
class BpePathEnv {
 public:
  BpePathEnv() {
    if (const char* v = std::getenv("CLIPSHARD_BPE_PATH")) saved_ = v;
    had_ = std::getenv("CLIPSHARD_BPE_PATH") != nullptr;
  }
  ~BpePathEnv() {
    if (had_)
      setenv("CLIPSHARD_BPE_PATH", saved_.c_str(), 1);
    else
      unsetenv("CLIPSHARD_BPE_PATH");
  }

 private:
  bool had_ = false;
  std::string saved_;
};

TEST(EmbeddedVocab, BytesAreTheShippedFile) {
  const std::string file = testing::read_file_bytes(testing::source_dir() / kVocabFile);
  const std::string_view embedded = text::embedded_bpe_gz();
  ASSERT_EQ(embedded.size(), file.size());
  EXPECT_TRUE(embedded == file);
}

TEST(EmbeddedVocab, BundledTokenizerNeedsNoFileAndMatchesTheFile) {
  BpePathEnv restore;
  unsetenv("CLIPSHARD_BPE_PATH");
  EXPECT_FALSE(ClipTokenizer::bpe_path_override().has_value());
  const ClipTokenizer built_in = ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
  const ClipTokenizer from_file =
      ClipTokenizer::from_bpe_file(testing::source_dir() / kVocabFile, TokenizerFlavor::kOpenAI);
  EXPECT_EQ(built_in.bpe().vocab_size(), from_file.bpe().vocab_size());
  EXPECT_EQ(built_in.bpe().merge_count(), from_file.bpe().merge_count());
  for (const char* text : {"a photo of a cat", "Ünïcödé &amp; ｆｕｌｌｗｉｄｔｈ 123,456",
                           "<|startoftext|>hello<|endoftext|>"}) {
    EXPECT_EQ(built_in.tokenize(text, 77).ids, from_file.tokenize(text, 77).ids) << text;
  }
}

TEST(EmbeddedVocab, EnvironmentOverrideIsReadAndAMissingFileIsNamed) {
  BpePathEnv restore;
  testing::TempDir tmp;
  const auto missing = tmp.path() / "no-such-vocab.txt.gz";
  setenv("CLIPSHARD_BPE_PATH", missing.c_str(), 1);
  ASSERT_EQ(ClipTokenizer::bpe_path_override(), missing);
  try {
    ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
    FAIL() << "a missing CLIPSHARD_BPE_PATH file was accepted";
  } catch (const text::VocabularyError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CLIPSHARD_BPE_PATH"), std::string::npos) << e.what();
  }
  // A file that is not the vocabulary is rejected, not silently replaced by the built-in copy.
  const auto broken = tmp.path() / "broken.txt.gz";
  std::ofstream(broken) << "not gzip";
  setenv("CLIPSHARD_BPE_PATH", broken.c_str(), 1);
  EXPECT_THROW(ClipTokenizer::bundled(TokenizerFlavor::kOpenAI), text::VocabularyError);
  // A copy of the real file works.
  const auto copy = tmp.path() / "copy.txt.gz";
  std::filesystem::copy_file(testing::source_dir() / kVocabFile, copy);
  setenv("CLIPSHARD_BPE_PATH", copy.c_str(), 1);
  EXPECT_EQ(ClipTokenizer::bundled(TokenizerFlavor::kOpenAI).tokenize("a dog", 77).ids.size(), 4u);
}

TEST(EmbeddedVocab, TruncatedGzipIsAVocabularyError) {
  const std::string_view embedded = text::embedded_bpe_gz();
  EXPECT_THROW(text::BpeModel::from_bpe_gz_bytes(embedded.substr(0, embedded.size() / 2), "half"),
               text::VocabularyError);
  EXPECT_THROW(text::BpeModel::from_bpe_gz_bytes("", "empty"), text::VocabularyError);
}

}  // namespace
}  // namespace clipshard
