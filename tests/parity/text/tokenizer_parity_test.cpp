// Every caption of tests/fixtures/tokens/*.jsonl (made by the official clip.tokenize /
// longclip.tokenize and a re-implementation of CLIPTokenizerFast) must give exactly the same ids,
// through both vocabulary sources (bpe_simple_vocab_16e6.txt.gz and vocab.json + merges.txt).
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "models/text/clip_tokenizer.h"
#include "models/text/python_text.h"

namespace clipshard {
namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& name) {
  const auto path = testing::fixtures() / "tokens" / name;
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

const ClipTokenizer& gz_tokenizer(TokenizerFlavor flavor) {
  static const ClipTokenizer openai = ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
  static const ClipTokenizer hf = ClipTokenizer::bundled(TokenizerFlavor::kHuggingFaceFast);
  return flavor == TokenizerFlavor::kOpenAI ? openai : hf;
}

const ClipTokenizer& hf_files_tokenizer(TokenizerFlavor flavor) {
  const auto dir = testing::fixtures() / "models/tiny/hf";
  static const ClipTokenizer openai = ClipTokenizer::from_hf_files(
      dir / "vocab.json", dir / "merges.txt", TokenizerFlavor::kOpenAI);
  static const ClipTokenizer hf = ClipTokenizer::from_hf_files(
      dir / "vocab.json", dir / "merges.txt", TokenizerFlavor::kHuggingFaceFast);
  return flavor == TokenizerFlavor::kOpenAI ? openai : hf;
}

struct Case {
  const char* file;
  TokenizerFlavor flavor;
  int context;
  int32_t pad;
  bool split_join;  // feed " ".join(text.split()) (ImageLongCLIPEvaluator)
};

class TokenFixture : public ::testing::TestWithParam<Case> {};

TEST_P(TokenFixture, EveryCaptionMatchesExactly) {
  const Case c = GetParam();
  const auto rows = read_jsonl(c.file);
  ASSERT_FALSE(rows.empty());
  int pass = 0, pass_hf_files = 0;
  for (const auto& row : rows) {
    const std::string id = row.at("id").get<std::string>();
    std::string text = row.at("text").get<std::string>();
    if (c.split_join) {
      text = python_split_join(text);
      EXPECT_EQ(text, row.at("operator_text").get<std::string>()) << id;
    }
    const auto expected = row.at("input_ids").get<std::vector<int32_t>>();
    const TokenizedText got = gz_tokenizer(c.flavor).tokenize(text, c.context);
    const auto padded = pad_ids(got.ids, c.context, c.pad);
    bool ok = padded == expected;
    EXPECT_EQ(padded, expected) << c.file << " " << id;
    if (row.contains("n_bpe")) {
      ok = ok && got.n_bpe == row.at("n_bpe").get<int>();
      EXPECT_EQ(got.n_bpe, row.at("n_bpe").get<int>()) << c.file << " " << id;
    }
    if (row.contains("truncated")) {
      ok = ok && got.truncated == row.at("truncated").get<bool>();
      EXPECT_EQ(got.truncated, row.at("truncated").get<bool>()) << c.file << " " << id;
    }
    if (row.contains("clean_text")) {
      const std::string clean = gz_tokenizer(c.flavor).clean_text(text);
      ok = ok && clean == row.at("clean_text").get<std::string>();
      EXPECT_EQ(clean, row.at("clean_text").get<std::string>()) << c.file << " " << id;
    }
    EXPECT_TRUE(got.n_bpe_exact);
    EXPECT_LE(got.ids.size(), static_cast<std::size_t>(c.context));
    pass += ok;
    const TokenizedText via_hf = hf_files_tokenizer(c.flavor).tokenize(text, c.context);
    EXPECT_EQ(via_hf.ids, got.ids)
        << "vocab.json/merges.txt route differs: " << c.file << " " << id;
    pass_hf_files += pad_ids(via_hf.ids, c.context, c.pad) == expected;
  }
  std::cout << "[ parity ] " << c.file << ": " << pass << "/" << rows.size()
            << " captions exact (ids, n_bpe, truncated" << (c.split_join ? ", operator_text" : "")
            << (rows[0].contains("clean_text") ? ", clean_text" : "") << "); vocab.json route "
            << pass_hf_files << "/" << rows.size() << "\n";
  EXPECT_EQ(pass, static_cast<int>(rows.size()));
  EXPECT_EQ(pass_hf_files, static_cast<int>(rows.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Tokens, TokenFixture,
    ::testing::Values(Case{"openai_77.jsonl", TokenizerFlavor::kOpenAI, 77, 0, false},
                      Case{"longclip_248.jsonl", TokenizerFlavor::kOpenAI, 248, 0, false},
                      Case{"longclip_248_operator.jsonl", TokenizerFlavor::kOpenAI, 248, 0, true},
                      Case{"hf_77.jsonl", TokenizerFlavor::kHuggingFaceFast, 77, 49407, false}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      return name;
    });

// The BPE strings of openai_77 / hf_77 (bpe_tokens) decode the ids: a check that the two vocabulary
// sources agree token by token, not only on the fixture ids.
TEST(TokenizerParity, VocabularySourcesAgree) {
  const auto& gz = gz_tokenizer(TokenizerFlavor::kOpenAI).bpe();
  const auto& hf = hf_files_tokenizer(TokenizerFlavor::kOpenAI).bpe();
  EXPECT_EQ(gz.vocab_size(), 49408u);
  EXPECT_EQ(hf.vocab_size(), 49408u);
  EXPECT_EQ(gz.merge_count(), 48894u);
  EXPECT_EQ(hf.merge_count(), 48894u);
  std::ifstream in(testing::fixtures() / "models/tiny/hf/vocab.json");
  const auto vocab = nlohmann::json::parse(in);
  int mismatches = 0;
  for (const auto& [token, id] : vocab.items()) mismatches += gz.token_id(token) != id.get<int>();
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace clipshard
