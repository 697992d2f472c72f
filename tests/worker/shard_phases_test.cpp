// The shard phases (worker/shard_phases.h) one at a time, with a fake model that records every
// tower call: deduplication of images and captions, the composition and order of batches, reuse
// from an embedding cache, interruption, and the error record of every kind of bad row.
#include "worker/shard_phases.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/fake_embedding_models.h"
#include "common/test_paths.h"
#include "shard/part_format.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using testing::FakeEmbeddingModels;

std::string image(const std::string& name) {
  return (testing::fixtures() / "images" / name).string();
}

std::string row(const std::string& image_path, const std::string& caption) {
  return nlohmann::json{{"image", image_path}, {"caption", caption}}.dump();
}

// Writes `lines` as a manifest and returns the task of one shard holding all of them.
ShardTask write_manifest_task(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
  ShardTask task;
  task.manifest = path.string();
  task.url = path.string();
  task.kind = InputKind::kManifest;
  task.shard.id = 0;
  task.shard.first_line = 1;
  task.shard.line_count = static_cast<int64_t>(lines.size());
  return task;
}

OperatorSpec evaluator(const std::string& image_key = "image",
                       const std::string& output_key = "clip_score") {
  OperatorSpec op;
  op.kind = OperatorKind::kClipEvaluator;
  op.image_key = image_key;
  op.text_key = "caption";
  op.output_key = output_key;
  return op;
}

OperatorSpec filter(const std::string& image_key = "image") {
  OperatorSpec op;
  op.kind = OperatorKind::kClipFilter;
  op.image_key = image_key;
  op.text_key = "caption";
  return op;
}

// Everything a ShardContext refers to, the pool last so that it finishes its queued decode tasks
// before the rest goes away.
struct Harness {
  Harness(std::vector<OperatorSpec> o, std::vector<int> image_spaces, std::vector<int> text_spaces,
          ShardTask t, int batch_size = 4, std::vector<fs::path> reuse_files = {})
      : models(std::move(image_spaces), std::move(text_spaces)),
        ops(std::move(o)),
        task(std::move(t)),
        reuse(reuse_files) {
    options.batch_size = batch_size;
    options.decode_threads = 2;
    options.prefetch_batches = 1;
    options.cache.write = true;
    pool = std::make_unique<ThreadPool>(options.decode_threads);
  }
  ShardContext context() { return {task, ops, models, options, *pool, reuse, stop, progress}; }

  FakeEmbeddingModels models;
  std::vector<OperatorSpec> ops;
  ShardTask task;
  ClipProcessorOptions options;
  std::atomic<bool> stop{false};
  ShardProgress progress;
  ReuseCache reuse;
  std::unique_ptr<ThreadPool> pool;
};

// --- collect_rows: deduplication ---------------------------------------------------------------

TEST(CollectRows, OneFilePerImageWithTheSpacesItsOperatorsNeed) {
  testing::TempDir tmp;
  const std::string a = image("photo_640x480.jpg"), b = image("portrait_333x500.jpg"),
                    c = image("square_224x224.jpg");
  auto line = [](const std::string& img, const std::string& thumb, const std::string& caption) {
    return nlohmann::json{{"image", img}, {"thumb", thumb}, {"caption", caption}}.dump();
  };
  // Operators 0 and 1 share image space 0 and text space 0; operator 2 reads "thumb" into image
  // space 1 and text space 1.
  Harness h(
      {evaluator(), filter(), evaluator("thumb", "thumb_score")}, {0, 0, 1}, {0, 0, 1},
      write_manifest_task(tmp.path() / "m.jsonl", {line(a, a, "a cat"), line(b, a, "a cat"),
                                                   line(a, c, "a dog"), line(a, b, "  a   cat ")}));
  ShardState state;
  collect_rows(h.context(), &state);

  ASSERT_EQ(state.rows.size(), 4u);
  ASSERT_EQ(state.files.size(), 3u);  // a, b, c in first-appearance order
  EXPECT_EQ(state.files[0].ref.path, a);
  EXPECT_EQ(state.files[1].ref.path, b);
  EXPECT_EQ(state.files[2].ref.path, c);
  EXPECT_EQ(state.files[0].needs, (std::vector<char>{1, 1}));
  EXPECT_EQ(state.files[1].needs, (std::vector<char>{1, 1}));  // row 2's image, row 4's thumb
  EXPECT_EQ(state.files[2].needs, (std::vector<char>{0, 1}));  // only ever a thumb
  EXPECT_EQ(state.files[0].first_row, 0);
  EXPECT_EQ(state.files[1].first_row, 1);
  EXPECT_EQ(state.files[2].first_row, 2);
  EXPECT_EQ(state.stats.images_distinct, 3);

  // One text per (text space, token sequence): "a cat" and "  a   cat " tokenize alike.
  ASSERT_EQ(state.texts.size(), 4u);
  EXPECT_EQ(state.texts[0].space, 0);  // "a cat"
  EXPECT_EQ(state.texts[1].space, 1);  // "a cat"
  EXPECT_EQ(state.texts[2].space, 0);  // "a dog"
  EXPECT_EQ(state.texts[3].space, 1);  // "a dog"
  EXPECT_EQ(state.texts[0].ids, state.texts[1].ids);
  EXPECT_NE(state.texts[0].ids, state.texts[2].ids);
  for (int r : {0, 1, 3}) {
    EXPECT_EQ(state.rows[r].ops[0].text, 0) << r;
    EXPECT_EQ(state.rows[r].ops[1].text, 0) << r;
    EXPECT_EQ(state.rows[r].ops[2].text, 1) << r;
  }
  EXPECT_EQ(state.rows[2].ops[0].text, 2);
  EXPECT_EQ(state.rows[2].ops[2].text, 3);
  EXPECT_EQ(state.rows[1].ops[0].image, 1);
  EXPECT_EQ(state.rows[1].ops[2].image, 0);
  EXPECT_EQ(state.rows[3].ops[2].image, 1);
  for (const Row& r : state.rows)
    for (const RowOp& ro : r.ops) {
      EXPECT_TRUE(ro.status.ok());
      EXPECT_TRUE(ro.key.empty());
    }
  EXPECT_TRUE(state.errors.empty());
}

TEST(CollectRows, BlankAndBrokenLinesAndTruncatedCaptions) {
  testing::TempDir tmp;
  const std::string a = image("photo_640x480.jpg");
  Harness h(
      {evaluator()}, {0}, {0},
      write_manifest_task(tmp.path() / "m.jsonl", {row(a, "one"), "", "{not json", "   ", "[1, 2]",
                                                   row(a, "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")}));
  ShardState state;
  collect_rows(h.context(), &state);
  EXPECT_EQ(state.rows.size(), 2u);
  EXPECT_EQ(state.rows[1].line, 6);
  EXPECT_EQ(state.rows[1].global_row, 5);
  EXPECT_EQ(state.stats.lines, 6);
  EXPECT_EQ(state.stats.blank_lines, 2);
  EXPECT_EQ(state.stats.error_lines, 2);
  EXPECT_EQ(state.stats.captions_truncated, 1);  // the fake's context is 8 words
  ASSERT_EQ(state.errors.size(), 2u);
  EXPECT_EQ(state.errors[0].line, 3);
  EXPECT_EQ(state.errors[0].status.code, RowError::kMalformedJson);
  EXPECT_EQ(state.errors[1].line, 5);
  EXPECT_EQ(state.errors[1].status.code, RowError::kNotAnObject);
  EXPECT_EQ(state.errors[1].op, "");
  EXPECT_EQ(state.texts[1].ids.size(), 8u);
}

// A WebDataset tar: each sample's member is its own image, used once by every operator; captions
// repeat across samples.
TEST(CollectRows, TarSamplesShareMembersAcrossOperatorsAndCaptionsAcrossSamples) {
  testing::TempDir tmp;
  const fs::path tar = tmp.path() / "s.tar";
  const std::string script =
      "import io, sys, tarfile\n"
      "def add(t, name, data):\n"
      "    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\n"
      "jpg = open(sys.argv[2], 'rb').read(); png = open(sys.argv[3], 'rb').read()\n"
      "with tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as t:\n"
      "    add(t, 'k0.jpg', jpg); add(t, 'k0.txt', b'a cat')\n"
      "    add(t, 'k1.jpg', jpg); add(t, 'k1.txt', b'a cat')\n"
      "    add(t, 'k2.png', png); add(t, 'k2.txt', b'a dog')\n"
      "    add(t, 'k3.txt', b'no image')\n";
  { std::ofstream(tmp.path() / "make.py") << script; }
  const std::string cmd = "/usr/bin/python3 " + (tmp.path() / "make.py").string() + " " +
                          tar.string() + " " + image("photo_640x480.jpg") + " " +
                          image("palette_256x192.png");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ShardTask task;
  task.manifest = tar.string();
  task.url = "url/s.tar";
  task.kind = InputKind::kTar;
  task.shard.line_count = 4;
  OperatorSpec e = evaluator("jpg;png"), f = filter("jpg;png");
  e.text_key = f.text_key = "txt";
  Harness h({e, f}, {0, 1}, {0, 0}, task);

  ShardState state;
  collect_rows(h.context(), &state);
  ASSERT_EQ(state.rows.size(), 4u);
  ASSERT_EQ(state.files.size(), 3u);  // k0.jpg, k1.jpg, k2.png: three members, same bytes or not
  for (const ImageFile& file : state.files) {
    EXPECT_TRUE(file.ref.in_tar());
    EXPECT_EQ(file.needs, (std::vector<char>{1, 1}));
  }
  EXPECT_EQ(state.texts.size(), 2u);  // "a cat", "a dog"
  EXPECT_EQ(state.rows[0].ops[0].text, state.rows[1].ops[1].text);
  EXPECT_EQ(state.rows[3].ops[0].status.code, RowError::kMissingKey);
  EXPECT_EQ(state.rows[3].ops[0].key, "jpg;png");

  // Through every phase: one error record for the sample, from its first operator.
  ASSERT_EQ(embed_images(h.context(), &state), PhaseResult::kCompleted);
  ASSERT_EQ(embed_texts(h.context(), &state), PhaseResult::kCompleted);
  score_rows(h.context(), &state);
  ASSERT_EQ(state.errors.size(), 1u);
  EXPECT_EQ(state.errors[0].line, 4);
  EXPECT_TRUE(state.errors[0].from_tar);
  EXPECT_EQ(state.errors[0].sample, "k3");
  EXPECT_EQ(state.errors[0].op, "ImageCLIPEvaluator");
  EXPECT_EQ(state.stats.embeddings.image_computed, 6);  // 3 members x 2 image spaces
  EXPECT_EQ(state.stats.images_decoded, 3);
  EXPECT_EQ(state.stats.images_preprocessed, 6);
}

// --- embed_images: batching --------------------------------------------------------------------

TEST(EmbedImages, BatchesOfBatchSizeInFirstAppearanceOrderWithoutFailedImages) {
  testing::TempDir tmp;
  const std::vector<std::string> names = {
      "photo_640x480.jpg", "portrait_333x500.jpg", "square_224x224.jpg", "gray_400x300.jpg",
      "missing.jpg",       "palette_256x192.png",  "q444_300x220.jpg"};
  std::vector<std::string> lines;
  for (size_t i = 0; i < names.size(); ++i) lines.push_back(row(image(names[i]), "c"));
  lines.push_back(row(image(names[2]), "again"));  // no new file
  Harness h({evaluator()}, {0}, {0}, write_manifest_task(tmp.path() / "m.jsonl", lines),
            /*batch_size=*/3);
  std::vector<int64_t> progress;
  h.progress = [&](int64_t done) { progress.push_back(done); };
  ShardState state;
  collect_rows(h.context(), &state);
  ASSERT_EQ(state.files.size(), 7u);
  ASSERT_EQ(embed_images(h.context(), &state), PhaseResult::kCompleted);

  // Waves of 3 files: {0, 1, 2}, {3, 4, 5} without the missing 4, {6}.
  ASSERT_EQ(h.models.image_calls.size(), 3u);
  EXPECT_EQ(h.models.image_calls[0].rows, 3);
  EXPECT_EQ(h.models.image_calls[1].rows, 2);
  EXPECT_EQ(h.models.image_calls[2].rows, 1);
  const std::map<int, std::pair<int, int>> expected = {{0, {0, 0}}, {1, {0, 1}}, {2, {0, 2}},
                                                       {3, {1, 0}}, {5, {1, 1}}, {6, {2, 0}}};
  for (const auto& [f, where] : expected) {
    ASSERT_EQ(state.files[f].emb[0].size(), size_t{FakeEmbeddingModels::kDim}) << f;
    EXPECT_EQ(FakeEmbeddingModels::call_of(state.files[f].emb[0]), where.first) << f;
    EXPECT_EQ(FakeEmbeddingModels::position_of(state.files[f].emb[0]), where.second) << f;
    EXPECT_TRUE(state.files[f].status.ok()) << f;
  }
  EXPECT_EQ(state.files[4].status.code, RowError::kFileNotFound);
  EXPECT_TRUE(state.files[4].emb[0].empty());
  EXPECT_EQ(state.stats.images_decoded, 6);
  EXPECT_EQ(state.stats.images_preprocessed, 6);
  EXPECT_EQ(state.stats.embeddings.image_computed, 6);
  EXPECT_EQ(state.stats.embeddings.image_reused, 0);
  EXPECT_EQ(progress, (std::vector<int64_t>{8 * 1 / 4, 8 * 2 / 4, 8 * 3 / 4}));
}

TEST(EmbedImages, OneBatchPerWaveAndSpaceWithTheFilesThatNeedIt) {
  testing::TempDir tmp;
  auto line = [](const std::string& img, const std::string& thumb) {
    return nlohmann::json{{"image", image(img)}, {"thumb", image(thumb)}, {"caption", "c"}}.dump();
  };
  // Image space 0 reads "image", space 1 "thumb": files 0, 1 are images, 2 both, 3 a thumb.
  Harness h({evaluator(), evaluator("thumb", "thumb_score")}, {0, 1}, {0, 0},
            write_manifest_task(tmp.path() / "m.jsonl",
                                {line("photo_640x480.jpg", "square_224x224.jpg"),
                                 line("portrait_333x500.jpg", "square_224x224.jpg"),
                                 line("square_224x224.jpg", "gray_400x300.jpg")}),
            /*batch_size=*/2);
  ShardState state;
  collect_rows(h.context(), &state);
  ASSERT_EQ(state.files.size(), 4u);  // photo, square, portrait, gray
  ASSERT_EQ(embed_images(h.context(), &state), PhaseResult::kCompleted);
  // Wave {photo, square}: space 0 both (square is row 3's image), space 1 square; wave
  // {portrait, gray}: space 0 portrait, space 1 gray.
  ASSERT_EQ(h.models.image_calls.size(), 4u);
  EXPECT_EQ(h.models.image_calls[0].space, 0);
  EXPECT_EQ(h.models.image_calls[0].rows, 2);  // photo, square
  EXPECT_EQ(h.models.image_calls[1].space, 1);
  EXPECT_EQ(h.models.image_calls[1].rows, 1);  // square
  EXPECT_EQ(h.models.image_calls[2].space, 0);
  EXPECT_EQ(h.models.image_calls[2].rows, 1);  // portrait
  EXPECT_EQ(h.models.image_calls[3].space, 1);
  EXPECT_EQ(h.models.image_calls[3].rows, 1);  // gray
  EXPECT_TRUE(state.files[0].emb[1].empty());  // photo is never a thumb
  EXPECT_TRUE(state.files[3].emb[0].empty());  // gray is only a thumb
  EXPECT_EQ(FakeEmbeddingModels::position_of(state.files[1].emb[0]), 1);
  EXPECT_EQ(state.stats.images_decoded, 4);  // once each, whatever the spaces
  EXPECT_EQ(state.stats.images_preprocessed, 5);
}

// --- embed_texts: batching ---------------------------------------------------------------------

TEST(EmbedTexts, LengthSortedBatchesTiesInFirstAppearanceOrderOnlyForDecodedImages) {
  testing::TempDir tmp;
  const std::string a = image("photo_640x480.jpg");
  const std::vector<std::string> captions = {"one two three", "a",   "b c", "d",
                                             "e f g h",       "x y", "z"};
  std::vector<std::string> lines;
  for (const auto& c : captions) lines.push_back(row(a, c));
  lines.push_back(row(image("missing.jpg"), "never encoded"));
  lines.push_back(row(image("truncated.jpg"), "never encoded either"));
  lines.push_back(row(a, "b c"));  // a repeat: no new text
  Harness h({evaluator()}, {0}, {0}, write_manifest_task(tmp.path() / "m.jsonl", lines),
            /*batch_size=*/3);
  ShardState state;
  collect_rows(h.context(), &state);
  ASSERT_EQ(state.texts.size(), 9u);
  ASSERT_EQ(embed_images(h.context(), &state), PhaseResult::kCompleted);
  ASSERT_EQ(embed_texts(h.context(), &state), PhaseResult::kCompleted);

  auto ids = [&](const std::string& caption) { return h.models.tokenize(0, caption).ids; };
  const std::vector<std::vector<std::string>> expected = {
      {"a", "d", "z"}, {"b c", "x y", "one two three"}, {"e f g h"}};
  ASSERT_EQ(h.models.text_calls.size(), expected.size());
  for (size_t c = 0; c < expected.size(); ++c) {
    ASSERT_EQ(h.models.text_calls[c].ids.size(), expected[c].size()) << c;
    for (size_t k = 0; k < expected[c].size(); ++k)
      EXPECT_EQ(h.models.text_calls[c].ids[k], ids(expected[c][k])) << expected[c][k];
  }
  // Padded to the batch's longest.
  EXPECT_EQ(h.models.text_calls[0].padded_length, 1);
  EXPECT_EQ(h.models.text_calls[1].padded_length, 3);
  EXPECT_EQ(h.models.text_calls[2].padded_length, 4);
  for (int t : {7, 8}) {  // the failed images' captions
    EXPECT_FALSE(state.texts[t].needed);
    EXPECT_TRUE(state.texts[t].emb.empty());
  }
  EXPECT_EQ(FakeEmbeddingModels::call_of(state.texts[2].emb), 1);  // "b c"
  EXPECT_EQ(FakeEmbeddingModels::position_of(state.texts[2].emb), 0);
  EXPECT_EQ(state.stats.embeddings.text_computed, 7);
  EXPECT_EQ(state.stats.embeddings.text_reused, 0);
}

// --- score_rows: scores, error records ---------------------------------------------------------

TEST(ScoreRows, EveryBadRowGetsOneErrorRecordAndBadRowScores) {
  testing::TempDir tmp;
  const std::string a = image("photo_640x480.jpg");
  const std::vector<std::string> lines = {row(a, "fine"),
                                          nlohmann::json{{"caption", "no image key"}}.dump(),
                                          row(a, " \t "),
                                          row("http://example.com/x.jpg", "remote"),
                                          row(image("missing.jpg"), "missing"),
                                          "{broken",
                                          "",
                                          row(image("not_an_image.jpg"), "not an image"),
                                          nlohmann::json{{"image", a}}.dump(),
                                          row(a, "fine too")};
  Harness h({evaluator(), filter()}, {0, 0}, {0, 0},
            write_manifest_task(tmp.path() / "m.jsonl", lines));
  ShardState state;
  collect_rows(h.context(), &state);
  ASSERT_EQ(embed_images(h.context(), &state), PhaseResult::kCompleted);
  ASSERT_EQ(embed_texts(h.context(), &state), PhaseResult::kCompleted);
  score_rows(h.context(), &state);

  struct Expected {
    int64_t line;
    RowError code;
    std::string op, key;
  };
  const std::vector<Expected> expected = {
      {2, RowError::kMissingKey, "ImageCLIPEvaluator", "image"},
      {3, RowError::kEmptyCaption, "ImageCLIPEvaluator", "caption"},
      {4, RowError::kRemotePath, "ImageCLIPEvaluator", "image"},
      {5, RowError::kFileNotFound, "ImageCLIPEvaluator", "image"},
      {6, RowError::kMalformedJson, "", ""},
      {8, RowError::kNotAnImage, "ImageCLIPEvaluator", "image"},
      {9, RowError::kMissingKey, "ImageCLIPEvaluator", "caption"}};
  ASSERT_EQ(state.errors.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(state.errors[i].line, expected[i].line) << i;
    EXPECT_EQ(state.errors[i].status.code, expected[i].code) << i;
    EXPECT_EQ(state.errors[i].op, expected[i].op) << i;
    EXPECT_EQ(state.errors[i].key, expected[i].key) << i;
    EXPECT_EQ(state.errors[i].manifest, h.task.manifest) << i;
  }
  EXPECT_EQ(state.stats.rows, 8);
  EXPECT_EQ(state.stats.error_rows, 6);
  EXPECT_EQ(state.stats.error_lines, 1);
  EXPECT_EQ(state.stats.blank_lines, 1);
  EXPECT_EQ(state.stats.errors.at("missing_key"), 2);
  int64_t counted = 0;
  for (const auto& [reason, n] : state.stats.errors) counted += n;
  EXPECT_EQ(counted, 7);

  // One sim per row (one filter); scores from the embeddings' cosine, bad rows marked.
  ASSERT_EQ(state.sims.size(), 8u);
  ASSERT_EQ(state.row_keys.size(), 16u);
  for (size_t r = 0; r < state.rows.size(); ++r) {
    const Row& rw = state.rows[r];
    const bool good = rw.line == 1 || rw.line == 10;
    if (good) {
      const auto& x = state.files[rw.ops[0].image].emb[0];
      const auto& y = state.texts[rw.ops[0].text].emb;
      double dot = 0.0;
      for (size_t k = 0; k < x.size(); ++k) dot += double(x[k]) * double(y[k]);
      EXPECT_EQ(rw.object["clip_score"].get<double>(), evaluator_score(static_cast<float>(dot)));
      EXPECT_EQ(state.sims[r], filter_similarity(static_cast<float>(dot)));
      EXPECT_TRUE(has_embeddings(state.row_keys[r * 2]));
      EXPECT_EQ(state.row_keys[r * 2][0], state.files[rw.ops[0].image].key.hi);
      EXPECT_EQ(state.row_keys[r * 2][3], state.texts[rw.ops[0].text].key.lo);
    } else {
      EXPECT_EQ(rw.object["clip_score"].get<double>(), kBadRowScore) << rw.line;
      EXPECT_EQ(state.sims[r], 0.0f);
      EXPECT_TRUE(std::signbit(state.sims[r])) << rw.line;
      EXPECT_FALSE(has_embeddings(state.row_keys[r * 2])) << rw.line;
      EXPECT_FALSE(has_embeddings(state.row_keys[r * 2 + 1])) << rw.line;
    }
  }
  // No caption of a row that failed before its image was read, or whose image failed, was encoded.
  std::set<std::vector<int32_t>> encoded;
  for (const auto& call : h.models.text_calls)
    for (const auto& ids : call.ids) encoded.insert(ids);
  EXPECT_EQ(encoded, (std::set<std::vector<int32_t>>{h.models.tokenize(0, "fine").ids,
                                                     h.models.tokenize(0, "fine too").ids}));
}

// --- process_shard: cache reuse and interruption -----------------------------------------------

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> reuse_lines() {
  return {row(image("photo_640x480.jpg"), "a cat"), row(image("portrait_333x500.jpg"), "a dog"),
          row(image("photo_640x480.jpg"), "a dog"), row(image("square_224x224.jpg"), "a bird")};
}

TEST(ProcessShard, EmbeddingsFromTheReuseCacheAreNotComputedAgain) {
  testing::TempDir tmp;
  const ShardTask task = write_manifest_task(tmp.path() / "m.jsonl", reuse_lines());
  const RunDirectory first_dir(tmp.path() / "first");
  {
    Harness first({evaluator(), filter()}, {0, 0}, {0, 0}, task, 2);
    ASSERT_EQ(process_shard(first.context(), first_dir, 1), ShardOutcome::kFinished);
    EXPECT_EQ(first.models.image_calls.size(), 2u);
  }
  const fs::path part = first_dir.shard_parts(0).embeddings;
  ASSERT_TRUE(fs::exists(part));

  const RunDirectory second_dir(tmp.path() / "second");
  Harness second({evaluator(), filter()}, {0, 0}, {0, 0}, task, 2, {part});
  ASSERT_EQ(process_shard(second.context(), second_dir, 1), ShardOutcome::kFinished);
  EXPECT_TRUE(second.models.image_calls.empty());
  EXPECT_TRUE(second.models.text_calls.empty());
  int rank = -1;
  const ShardStats stats = read_done_part(second_dir.shard_parts(0).done, &rank);
  EXPECT_EQ(stats.embeddings.image_reused, 3);
  EXPECT_EQ(stats.embeddings.text_reused, 3);
  EXPECT_EQ(stats.embeddings.image_computed, 0);
  EXPECT_EQ(stats.embeddings.text_computed, 0);
  EXPECT_EQ(stats.images_decoded, 0);  // every embedding was cached: no pixels needed
  EXPECT_EQ(stats.images_distinct, 3);
  // float32 reuse is exact: the same scores, sims and row keys.
  for (auto part_of : {&ShardPartPaths::output, &ShardPartPaths::sims, &ShardPartPaths::errors})
    EXPECT_EQ(read_text(second_dir.shard_parts(0).*part_of),
              read_text(first_dir.shard_parts(0).*part_of));
  EXPECT_EQ(read_text(row_keys_path(second_dir.root(), 0)),
            read_text(row_keys_path(first_dir.root(), 0)));

  // New content next to reused content: only the new image and caption are computed.
  std::vector<std::string> more = reuse_lines();
  more.push_back(row(image("gray_400x300.jpg"), "a fish"));
  const RunDirectory third_dir(tmp.path() / "third");
  Harness third({evaluator(), filter()}, {0, 0}, {0, 0},
                write_manifest_task(tmp.path() / "more.jsonl", more), 2, {part});
  ASSERT_EQ(process_shard(third.context(), third_dir, 1), ShardOutcome::kFinished);
  ASSERT_EQ(third.models.image_calls.size(), 1u);
  EXPECT_EQ(third.models.image_calls[0].rows, 1);
  ASSERT_EQ(third.models.text_calls.size(), 1u);
  EXPECT_EQ(third.models.text_calls[0].ids,
            (std::vector<std::vector<int32_t>>{third.models.tokenize(0, "a fish").ids}));
  const ShardStats third_stats = read_done_part(third_dir.shard_parts(0).done, &rank);
  EXPECT_EQ(third_stats.embeddings.image_reused, 3);
  EXPECT_EQ(third_stats.embeddings.image_computed, 1);
  EXPECT_EQ(third_stats.embeddings.text_reused, 3);
  EXPECT_EQ(third_stats.embeddings.text_computed, 1);
  EXPECT_EQ(third_stats.images_decoded, 1);
}

TEST(ProcessShard, StopDuringImagesEndsAfterTheCurrentBatchWithoutADoneFile) {
  testing::TempDir tmp;
  Harness h({evaluator()}, {0}, {0}, write_manifest_task(tmp.path() / "m.jsonl", reuse_lines()),
            /*batch_size=*/1);
  h.models.on_image_call = [&](int) { h.stop = true; };
  const RunDirectory dir(tmp.path() / "run");
  EXPECT_EQ(process_shard(h.context(), dir, 1), ShardOutcome::kInterrupted);
  EXPECT_EQ(h.models.image_calls.size(), 1u);  // 3 files: the first batch finished, no other
  EXPECT_TRUE(h.models.text_calls.empty());
  EXPECT_FALSE(dir.shard_done(0));
  EXPECT_FALSE(fs::exists(dir.shard_parts(0).output));
  EXPECT_FALSE(fs::exists(dir.shard_parts(0).embeddings));
}

TEST(ProcessShard, StopDuringTextsEndsAfterTheCurrentBatchWithoutADoneFile) {
  testing::TempDir tmp;
  Harness h({evaluator()}, {0}, {0}, write_manifest_task(tmp.path() / "m.jsonl", reuse_lines()),
            /*batch_size=*/1);
  h.models.on_text_call = [&](int) { h.stop = true; };
  const RunDirectory dir(tmp.path() / "run");
  EXPECT_EQ(process_shard(h.context(), dir, 1), ShardOutcome::kInterrupted);
  EXPECT_EQ(h.models.image_calls.size(), 3u);
  EXPECT_EQ(h.models.text_calls.size(), 1u);  // 3 captions: the first batch finished, no other
  EXPECT_FALSE(dir.shard_done(0));
  EXPECT_FALSE(fs::exists(dir.shard_parts(0).output));
}

TEST(ProcessShard, WritesEveryPartAndReportsEveryLine) {
  testing::TempDir tmp;
  std::vector<std::string> lines = reuse_lines();
  lines.push_back("nope");
  Harness h({evaluator(), filter()}, {0, 0}, {0, 0},
            write_manifest_task(tmp.path() / "m.jsonl", lines), /*batch_size=*/2);
  std::vector<int64_t> progress;
  h.progress = [&](int64_t done) { progress.push_back(done); };
  const RunDirectory dir(tmp.path() / "run");
  ASSERT_EQ(process_shard(h.context(), dir, 3), ShardOutcome::kFinished);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), 5);
  int rank = -1;
  const ShardStats stats = read_done_part(dir.shard_parts(0).done, &rank);
  EXPECT_EQ(rank, 3);
  EXPECT_EQ(stats.lines, 5);
  EXPECT_EQ(stats.rows, 4);
  EXPECT_EQ(stats.error_lines, 1);
  EXPECT_GT(stats.seconds.total, 0.0);
  EXPECT_EQ(read_sims_part(dir.shard_parts(0).sims, 1).size(), 4u);
  std::istringstream out(read_text(dir.shard_parts(0).output));
  std::string first;
  std::getline(out, first);
  const auto j = nlohmann::json::parse(first);
  EXPECT_EQ(j["caption"], "a cat");
  EXPECT_TRUE(j.contains("clip_score"));
  EXPECT_TRUE(fs::exists(dir.shard_parts(0).embeddings));
  EXPECT_TRUE(fs::exists(row_keys_path(dir.root(), 0)));
  EXPECT_NE(read_text(dir.shard_parts(0).errors).find("malformed_json"), std::string::npos);

  // Without the cache: neither the cache part nor the row keys.
  Harness nocache({evaluator(), filter()}, {0, 0}, {0, 0}, h.task, 2);
  nocache.options.cache.write = false;
  const RunDirectory dir2(tmp.path() / "nocache");
  ASSERT_EQ(process_shard(nocache.context(), dir2, 3), ShardOutcome::kFinished);
  EXPECT_FALSE(fs::exists(dir2.shard_parts(0).embeddings));
  EXPECT_FALSE(fs::exists(row_keys_path(dir2.root(), 0)));
  EXPECT_EQ(read_text(dir2.shard_parts(0).output), read_text(dir.shard_parts(0).output));
}

}  // namespace
}  // namespace clipshard
