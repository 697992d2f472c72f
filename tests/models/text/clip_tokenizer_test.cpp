// ClipTokenizer behaviour beyond the golden fixtures: the streamed pipelines equal the whole-text
// definitions, robustness (invalid UTF-8, 10 MB captions), thread safety, errors, BPE loops.
#include "models/text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "common/test_paths.h"
#include "models/text/ftfy_lite.h"
#include "models/text/pretokenizer.h"
#include "models/text/python_text.h"
#include "models/text/unicode_text.h"

namespace clipshard {
namespace {

const ClipTokenizer& openai() {
  static const ClipTokenizer t = ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
  return t;
}
const ClipTokenizer& hf() {
  static const ClipTokenizer t = ClipTokenizer::bundled(TokenizerFlavor::kHuggingFaceFast);
  return t;
}

// The official cleaning on the whole string at once.
std::u32string openai_clean_whole(const std::string& utf8) {
  std::u32string s = text::ftfy_fix_text(text::utf8_to_u32(utf8));
  s = python_html_unescape(python_html_unescape(s));
  std::u32string collapsed;
  bool pending = false;
  for (char32_t c : s) {
    if (text::is_python_space(c)) {
      pending = !collapsed.empty();
    } else {
      if (pending) collapsed.push_back(' ');
      pending = false;
      collapsed.push_back(c);
    }
  }
  return text::python_lower(collapsed);
}

std::u32string hf_normalize_whole(const std::string& utf8) {
  const std::u32string s = text::nfc(text::utf8_to_u32(utf8));
  std::u32string out;
  bool last_space = false;
  for (char32_t c : s) {
    if (text::is_unicode_white_space(c)) {
      if (!last_space) out.push_back(' ');
      last_space = true;
    } else {
      last_space = false;
      text::append_lower_no_context(out, c);
    }
  }
  return out;
}

std::string random_text(std::mt19937& rng, int parts) {
  static const char* kParts[] = {"word",
                                 "Cat",
                                 " ",
                                 "  ",
                                 "\t",
                                 "\n",
                                 "\r\n",
                                 "\u3000",
                                 "\u00a0",
                                 "\x1c",
                                 "&amp;",
                                 "amp;",
                                 "&lt;",
                                 "<",
                                 "&#x41;",
                                 "&#",
                                 "12;",
                                 "&eacute",
                                 "\u03a3",
                                 "A\u03a3",
                                 "\u0345",
                                 "\u017f",
                                 "'s",
                                 "'S",
                                 "\u2019",
                                 "\u0093",
                                 "\ufb01",
                                 "\uff76",
                                 "\uff9e",
                                 "e",
                                 "\u0301",
                                 "\x1b[31m",
                                 "\x01",
                                 "<|endoftext|>",
                                 "<|startoftext|>",
                                 "\u4e00\u4e8c",
                                 "123",
                                 "!!",
                                 "\U0001F600",
                                 "\xff",
                                 "\xe2\x82",
                                 "\u0130"};
  std::string text;
  for (int i = 0; i < parts; ++i) text += kParts[rng() % (sizeof(kParts) / sizeof(kParts[0]))];
  return text;
}

TEST(ClipTokenizer, StreamedCleaningEqualsWholeText) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    // Long enough for many pieces (a piece is ~4096 code points).
    const std::string text = random_text(rng, 200 + static_cast<int>(rng() % 8000));
    ASSERT_EQ(openai().clean_text(text), text::u32_to_utf8(openai_clean_whole(text))) << trial;
    ASSERT_EQ(hf().clean_text(text), text::u32_to_utf8(hf_normalize_whole(text))) << trial;
  }
}

TEST(ClipTokenizer, IdsAndCountFollowTheCleanText) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 30; ++trial) {
    const std::string text = random_text(rng, 50 + static_cast<int>(rng() % 3000));
    const std::u32string clean = text::utf8_to_u32(openai().clean_text(text));
    std::vector<int32_t> ids;
    for (const auto& token : text::pretokenize_all(clean, true)) {
      if (token == text::kStartText) {
        ids.push_back(49406);
      } else if (token == text::kEndText) {
        ids.push_back(49407);
      } else {
        openai().bpe().encode_word(text::u32_to_utf8(token), ids);
      }
    }
    const TokenizedText got = openai().tokenize(text, 248);
    ASSERT_EQ(got.n_bpe, static_cast<int>(ids.size()));
    ASSERT_EQ(got.truncated, ids.size() > 246u);
    std::vector<int32_t> expected{49406};
    expected.insert(expected.end(), ids.begin(),
                    ids.begin() + std::min<std::size_t>(ids.size(), 246));
    expected.push_back(49407);
    ASSERT_EQ(got.ids, expected);
  }
}

TEST(ClipTokenizer, SpecialTokens) {
  // The official regex only sees a special token where no punctuation run swallows its '<'.
  const int32_t a = openai().tokenize("a", 77).ids[1], b = openai().tokenize("b", 77).ids[1];
  EXPECT_EQ(openai().tokenize("a <|endoftext|> b", 77).ids,
            (std::vector<int32_t>{49406, a, 49407, b, 49407}));
  EXPECT_EQ(openai().tokenize("a &lt;|endoftext|&gt; b", 77).ids,
            (std::vector<int32_t>{49406, a, 49407, b, 49407}));             // unescaped first
  EXPECT_EQ(hf().tokenize("a &lt;|endoftext|&gt; b", 77).ids.size(), 14u);  // not unescaped
  const auto glued = openai().tokenize("a.<|endoftext|>", 77).ids;
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 49407), 1);
  // HF extracts added tokens first, after lower-casing.
  const auto hf_ids = hf().tokenize("a.<|ENDOFTEXT|>", 77).ids;
  EXPECT_EQ(std::count(hf_ids.begin(), hf_ids.end(), 49407), 2);
  EXPECT_EQ(hf_ids[hf_ids.size() - 2], 49407);
}

TEST(ClipTokenizer, TruncationAndPadding) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "cat ";
  const auto r = openai().tokenize(text, 77);
  EXPECT_EQ(r.ids.size(), 77u);
  EXPECT_EQ(r.ids.front(), 49406);
  EXPECT_EQ(r.ids.back(), 49407);
  EXPECT_EQ(r.n_bpe, 100);
  EXPECT_TRUE(r.truncated);
  EXPECT_TRUE(r.n_bpe_exact);
  const auto empty = openai().tokenize("", 77);
  EXPECT_EQ(empty.ids, (std::vector<int32_t>{49406, 49407}));
  EXPECT_EQ(pad_ids(empty.ids, 5, 0), (std::vector<int32_t>{49406, 49407, 0, 0, 0}));
  EXPECT_EQ(pad_ids(empty.ids, 4, 49407), (std::vector<int32_t>{49406, 49407, 49407, 49407}));
  EXPECT_EQ(openai().tokenize("a photo", 2).ids, (std::vector<int32_t>{49406, 49407}));
  EXPECT_THROW(openai().tokenize("x", 1), std::invalid_argument);
  EXPECT_EQ(openai().start_id(), 49406);
  EXPECT_EQ(hf().end_id(), 49407);
}

TEST(ClipTokenizer, InvalidUtf8NeverCrashes) {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(rng() % 64, '\0');
    for (char& b : bytes) b = static_cast<char>(rng() % 256);
    for (const ClipTokenizer* t : {&openai(), &hf()}) {
      const auto r = t->tokenize(bytes, 77);
      ASSERT_GE(r.ids.size(), 2u);
      ASSERT_LE(r.ids.size(), 77u);
      for (int32_t id : r.ids) ASSERT_TRUE(id >= 0 && id < 49408);
    }
  }
  // Bad bytes read as U+FFFD, whose UTF-8 is BPE-encoded like any other character.
  EXPECT_EQ(openai().tokenize("\xff", 77).ids, openai().tokenize("\ufffd", 77).ids);
  EXPECT_EQ(hf().tokenize("a\xc0\xaf"
                          "b",
                          77)
                .ids,
            hf().tokenize("a\ufffd\ufffdb", 77).ids);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(ClipTokenizer, TenMegabyteCaptionsFinishFast) {
  std::string words;
  while (words.size() < 10u << 20) words += "A photo of a cat sitting on the mat &amp; a dog. ";
  std::string one_word(10u << 20, 'a');
  std::string lines;
  while (lines.size() < 10u << 20) lines += "x\n";
  for (const std::string* text : {&words, &one_word, &lines}) {
    for (const ClipTokenizer* t : {&openai(), &hf()}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = t->tokenize(*text, 248);
      const double s = seconds_since(t0);
      std::cout << "[ timing ] " << text->size() << " bytes, " << (t == &openai() ? "openai" : "hf")
                << ": " << s << " s, n_bpe " << r.n_bpe
                << (r.n_bpe_exact ? " (exact)" : " (lower bound)") << "\n";
      EXPECT_EQ(r.ids.size(), 248u);
      EXPECT_TRUE(r.truncated);
      EXPECT_LT(s, 20.0);  // ~0.5 s in a release build; generous for sanitizer builds
    }
  }
  // A run without whitespace longer than the limits: ids as for a prefix that fills the context.
  std::string dots;
  while (dots.size() < 3u << 20) dots += "a.b,";
  for (const std::string* text : {&one_word, &dots}) {
    for (const ClipTokenizer* t : {&openai(), &hf()}) {
      const auto r = t->tokenize(*text, 248);
      EXPECT_FALSE(r.n_bpe_exact);
      EXPECT_EQ(r.ids, t->tokenize(text->substr(0, 8000), 248).ids);
    }
  }
  // Where it stopped early, the ids equal those of a prefix long enough to fill the context.
  EXPECT_EQ(openai().tokenize(words, 248).ids, openai().tokenize(words.substr(0, 4000), 248).ids);
  EXPECT_EQ(hf().tokenize(words, 77).ids, hf().tokenize(words.substr(0, 4000), 77).ids);
}

TEST(ClipTokenizer, ConcurrentCallsAgreeWithSerialOnes) {
  std::vector<std::string> texts;
  std::mt19937 rng(21);
  for (int i = 0; i < 64; ++i) texts.push_back(random_text(rng, 5 + static_cast<int>(rng() % 80)));
  // A fresh tokenizer, so that the threads race on an empty BPE cache.
  const ClipTokenizer shared = ClipTokenizer::from_bpe_file(
      testing::source_dir() / "models/data/bpe_simple_vocab_16e6.txt.gz", TokenizerFlavor::kOpenAI);
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(openai().tokenize(t, 77).ids);
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < texts.size(); ++i) {
          const std::size_t j = (i * 7 + k * 13 + round) % texts.size();
          failures[k] += shared.tokenize(texts[j], 77).ids != expected[j];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(ClipTokenizer, UnreadableVocabularyThrowsNamingTheFile) {
  testing::TempDir dir;
  const auto missing = dir.path() / "missing.txt.gz";
  try {
    ClipTokenizer::from_bpe_file(missing, TokenizerFlavor::kOpenAI);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt.gz"), std::string::npos) << e.what();
  }
  const auto junk = dir.path() / "junk.txt.gz";
  std::ofstream(junk) << "#version\nthis is not a merge line at all\n";
  EXPECT_THROW(ClipTokenizer::from_bpe_file(junk, TokenizerFlavor::kOpenAI), text::VocabularyError);
  const auto vocab = dir.path() / "vocab.json";
  std::ofstream(vocab) << "[1, 2]";
  const auto merges = testing::fixtures() / "models/tiny/hf/merges.txt";
  EXPECT_THROW(ClipTokenizer::from_hf_files(vocab, merges, TokenizerFlavor::kHuggingFaceFast),
               text::VocabularyError);
  EXPECT_THROW(ClipTokenizer::from_hf_files(dir.path() / "none.json", merges,
                                            TokenizerFlavor::kHuggingFaceFast),
               text::VocabularyError);
}

TEST(BpeModel, HeapMergeEqualsOfficialLoop) {
  const auto& bpe = openai().bpe();
  std::mt19937 rng(17);
  const std::string alphabet = "aaabbeeeinnorsstt th er in an re ing ion \xc3\xa9\xe4\xb8\x80";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string word(1 + rng() % 200, 'x');
    for (char& c : word) c = alphabet[rng() % alphabet.size()];
    const auto symbols = bpe.initial_symbols(word);
    const auto expected = bpe.merge_reference(symbols);
    ASSERT_EQ(bpe.merge_heap(symbols), expected) << word;
    ASSERT_EQ(bpe.merge_buckets(symbols), expected) << word;
  }
  for (const char* unit : {"a", "ab", "the ", "\xe4\xb8\x80"}) {
    std::string word;
    while (word.size() < 5000) word += unit;
    const auto symbols = bpe.initial_symbols(word);
    const auto expected = bpe.merge_reference(symbols);
    EXPECT_EQ(bpe.merge_heap(symbols), expected) << unit;
    EXPECT_EQ(bpe.merge_buckets(symbols), expected) << unit;
  }
  // Above 32768 symbols merge_heap hands over to the bucket queue.
  std::string huge;
  for (int i = 0; huge.size() < 100000; ++i) huge += alphabet[(i * 7919) % alphabet.size()];
  const auto huge_symbols = bpe.initial_symbols(huge);
  EXPECT_EQ(bpe.merge_heap(huge_symbols), bpe.merge_buckets(huge_symbols));
}

}  // namespace
}  // namespace clipshard

namespace clipshard {
namespace {
TEST(ClipTokenizer, DeeplyNestedEscapesFinishFast) {
  std::string nested = "&";
  while (nested.size() < (4u << 20)) nested += "amp;";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = openai().tokenize(nested, 77);
  EXPECT_LT(seconds_since(t0), 20.0);
  EXPECT_TRUE(r.truncated);
}
}  // namespace
}  // namespace clipshard
