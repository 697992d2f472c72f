// export_run on a run written by hand (no model): rows aligned across the three folders, chunking
// into N files, the filter's dropped rows and bad rows left out, --image-only, fp16, and the
// refusals (unfinished run, not a run, existing directory, output.jsonl that does not match the
// parts, damaged row keys) that leave nothing behind. The end-to-end check with a real run and
// numpy is tests/driver/export_e2e_test.sh.
#include "driver/export.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/shard_parts.h"
#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_writer.h"
#include "shard/cache/half_float.h"
#include "shard/npy_writer.h"
#include "shard/row_keys.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
constexpr int kDim = 4;

// The embedding of a content key: distinct per key, so that a misaligned row shows.
std::vector<float> embedding_of(uint64_t key) {
  std::vector<float> e(kDim);
  for (int i = 0; i < kDim; ++i) e[i] = static_cast<float>(key * 10 + i);
  return e;
}

// Reads an .npy file written by NpyWriter (float32) as rows of kDim floats.
std::vector<std::vector<float>> read_npy(const fs::path& path, int64_t expect_rows) {
  const std::string bytes = read_file(path);
  const std::string header = npy_header(NpyDType::kFloat32, expect_rows, kDim);
  EXPECT_EQ(bytes.substr(0, header.size()), header) << path;
  std::vector<std::vector<float>> rows;
  for (size_t at = header.size(); at + kDim * 4 <= bytes.size(); at += kDim * 4) {
    rows.emplace_back(kDim);
    std::memcpy(rows.back().data(), bytes.data() + at, kDim * 4);
  }
  return rows;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::string text = read_file(path), line;
  for (char c : text) {
    if (c == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  return lines;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("clipshard-export-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    run_ = root_ / "run";
    write_run();
  }
  void TearDown() override { fs::remove_all(root_); }

  // Two shards of an evaluator + filter pipeline. Row r (global) has image key 100 + r and text
  // key 200 + r, sim r / 10; the filter's cutoff is 0.15, so rows 0 and 1 are dropped. Row 4 has
  // no keys (the evaluator's bad row) but sim 0.9, so it is in output.jsonl without embeddings.
  // Rows 2 and 7 share their image (one cache entry, one key).
  void write_run() {
    RunDirectory dir(run_);
    write_file_atomically(dir.state(), R"({"format": "clipshard-run-state", "shard_count": 2})");
    write_file_atomically(dir.summary(),
                          R"({"format": "clipshard-summary", "version": 1, "status": "finished",
            "embedding_cache": {"enabled": true},
            "operators": [{"operator": "ImageCLIPEvaluator"},
                          {"operator": "ImageClipFilter", "effective_threshold": 0.15}]})");
    std::string output;
    int64_t row = 0;
    for (int64_t s = 0; s < 2; ++s) {
      std::vector<std::string> lines;
      std::vector<float> sims;
      EmbeddingCacheWriter cache(dir.shard_parts(s).embeddings);
      RowKeysWriter keys(row_keys_path(run_, s), {{"model", "hf224", "model", "hf77"},
                                                  {"model", "hf224", "model", "hf77"}});
      for (int i = 0; i < 5; ++i, ++row) {
        const std::string line = R"({"id":)" + std::to_string(row) + "}";
        lines.push_back(line);
        const float sim = row == 4 ? 0.9f : static_cast<float>(row) / 10.0f;
        sims.push_back(sim);
        if (sim >= 0.15) output += line + "\n";
        if (row == 4) {
          keys.add_row({RowKeys{}, RowKeys{}});
          continue;
        }
        const uint64_t image = row == 7 ? 102 : 100 + row, text = 200 + row;
        cache.add({"model", "image", "hf224"}, {0, image}, row, embedding_of(image).data(), kDim);
        cache.add({"model", "text", "hf77"}, {0, text}, row, embedding_of(text).data(), kDim);
        keys.add_row({RowKeys{0, image, 0, text}, RowKeys{0, image, 0, text}});
      }
      cache.commit();
      keys.commit();
      testing::write_finished_shard(dir, s, lines, sims, "", {{"rows", 5}});
    }
    write_file_atomically(dir.output(), output);
  }

  // Nothing but the run and (when given) the export itself under root_.
  void expect_no_leftovers(const std::string& allowed = "") {
    for (const auto& e : fs::directory_iterator(root_)) {
      const std::string name = e.path().filename().string();
      EXPECT_TRUE(name == "run" || name == allowed) << "left behind: " << e.path();
    }
  }

  fs::path root_, run_;
};

TEST_F(ExportTest, RowsAreAlignedAndChunked) {
  ExportOptions o;
  o.to = root_ / "out";
  o.rows_per_file = 3;
  const ExportResult r = export_run(run_, o);
  // Output rows 2..9 (8 rows), row 4 without embeddings: 7 rows in files of 3, 3, 1.
  EXPECT_EQ(r.rows, 7);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(r.files, 3);
  EXPECT_EQ(r.dim, kDim);
  EXPECT_EQ(r.operator_name, "ImageCLIPEvaluator");
  const std::vector<int64_t> expect_rows = {2, 3, 5, 6, 7, 8, 9};
  size_t i = 0;
  for (int n = 0; n < 3; ++n) {
    const std::string suffix = "_" + std::to_string(n);
    const int64_t count = n < 2 ? 3 : 1;
    const auto images = read_npy(o.to / "img_emb" / ("img_emb" + suffix + ".npy"), count);
    const auto texts = read_npy(o.to / "text_emb" / ("text_emb" + suffix + ".npy"), count);
    const auto meta = read_lines(o.to / "metadata" / ("metadata" + suffix + ".jsonl"));
    ASSERT_EQ(images.size(), static_cast<size_t>(count));
    ASSERT_EQ(texts.size(), static_cast<size_t>(count));
    ASSERT_EQ(meta.size(), static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k, ++i) {
      const int64_t row = expect_rows[i];
      EXPECT_EQ(meta[k], R"({"id":)" + std::to_string(row) + "}");
      EXPECT_EQ(images[k], embedding_of(row == 7 ? 102 : 100 + row)) << "row " << row;
      EXPECT_EQ(texts[k], embedding_of(200 + row)) << "row " << row;
    }
  }
  EXPECT_FALSE(fs::exists(o.to / "img_emb" / "img_emb_3.npy"));
  EXPECT_TRUE(fs::exists(o.to / "export.json"));
  expect_no_leftovers("out");
}

TEST_F(ExportTest, LeftoversOfAKilledExportAreRemoved) {
  // 4194304 is above Linux's largest pid_max: no such process.
  fs::create_directories(root_ / "out.tmp-4194305" / "img_emb");
  fs::create_directories(root_ / "out.old-4194305");
  fs::create_directories(root_ / "out.tmp-12ab");  // not a pid: not ours
  ExportOptions o;
  o.to = root_ / "out";
  export_run(run_, o);
  EXPECT_TRUE(fs::exists(root_ / "out.tmp-12ab"));
  fs::remove_all(root_ / "out.tmp-12ab");
  expect_no_leftovers("out");
}

TEST_F(ExportTest, ImageOnlyAndFloat16) {
  ExportOptions o;
  o.to = root_ / "out";
  o.image = false;  // --text-only
  o.fp16 = true;
  const ExportResult r = export_run(run_, o);
  EXPECT_EQ(r.rows, 7);
  EXPECT_EQ(r.files, 1);
  EXPECT_FALSE(fs::exists(o.to / "img_emb"));
  const std::string bytes = read_file(o.to / "text_emb" / "text_emb_0.npy");
  const std::string header = npy_header(NpyDType::kFloat16, 7, kDim);
  ASSERT_EQ(bytes.size(), header.size() + 7 * kDim * 2);
  uint16_t first[kDim];
  std::memcpy(first, bytes.data() + header.size(), sizeof first);
  EXPECT_EQ(half_to_float(first[1]), embedding_of(202)[1]);  // 2021: exact in half
}

TEST_F(ExportTest, AnExistingDirectoryIsRefusedUnlessItIsAnEarlierExportAndForced) {
  ExportOptions o;
  o.to = root_ / "out";
  fs::create_directories(o.to);  // empty: fine
  export_run(run_, o);
  EXPECT_THROW(export_run(run_, o), std::runtime_error);  // not empty
  o.force = true;
  o.rows_per_file = 1;
  EXPECT_EQ(export_run(run_, o).files, 7);
  EXPECT_TRUE(fs::exists(o.to / "img_emb" / "img_emb_6.npy"));
  fs::create_directories(root_ / "data");
  write_file_atomically(root_ / "data" / "precious.txt", "x");
  o.to = root_ / "data";
  try {
    export_run(run_, o);
    FAIL() << "--force replaced a directory that is not an export";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not an earlier clipshard export"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(fs::exists(root_ / "data" / "precious.txt"));
  fs::remove_all(root_ / "data");
  expect_no_leftovers("out");
}

TEST_F(ExportTest, BadInputsAreErrorsThatLeaveNothingBehind) {
  ExportOptions o;
  o.to = root_ / "out";
  const auto expect_error = [&](const std::string& want) {
    try {
      export_run(run_, o);
      ADD_FAILURE() << "no error, expected one containing \"" << want << "\"";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.to));
    for (const auto& e : fs::directory_iterator(root_))
      EXPECT_EQ(e.path().filename(), "run") << "left behind: " << e.path();
  };
  o.op = 2;
  expect_error("the pipeline has 2 step(s)");
  o.op = -1;
  expect_error("the pipeline has 2 step(s)");
  o.op = 0;
  o.image = o.text = false;
  expect_error("nothing to export");
  o.image = o.text = true;

  // output.jsonl from another merge.
  const std::string output = read_file(run_ / "output.jsonl");
  write_file_atomically(run_ / "output.jsonl", R"({"id":2,"other":1})"
                                               "\n");
  expect_error("does not match the parts");
  write_file_atomically(run_ / "output.jsonl", output + R"({"id":99})"
                                                        "\n");
  expect_error("has more rows than the parts");
  write_file_atomically(run_ / "output.jsonl", output);

  // A damaged row keys part: the error comes after rows were written to the temporary directory.
  const fs::path keys = row_keys_path(run_, 1);
  const std::string keys_bytes = read_file(keys);
  fs::resize_file(keys, fs::file_size(keys) - 40);
  expect_error(keys.string());
  fs::remove(keys);
  expect_error("--restart");
  write_file_atomically(keys, keys_bytes);

  // A damaged embedding part.
  const fs::path emb = run_ / "parts" / "shard-00000001.emb.h5";
  const std::string emb_bytes = read_file(emb);
  write_file_atomically(emb, emb_bytes.substr(0, emb_bytes.size() / 2));
  expect_error(emb.string());
  write_file_atomically(emb, emb_bytes);

  // Unfinished: no summary; a shard not done.
  fs::rename(run_ / "summary.json", run_ / "summary.away");
  expect_error("not finished");
  fs::rename(run_ / "summary.away", run_ / "summary.json");
  fs::rename(run_ / "parts" / "shard-00000001.done.json", run_ / "parts" / "x");
  expect_error("shard 1 is not done");
  fs::rename(run_ / "parts" / "x", run_ / "parts" / "shard-00000001.done.json");

  // A run without the embedding cache.
  const std::string summary = read_file(run_ / "summary.json");
  write_file_atomically(run_ / "summary.json",
                        R"({"format": "clipshard-summary", "status": "finished",
                            "embedding_cache": {"enabled": false},
                            "operators": [{"operator": "ImageCLIPEvaluator"}]})");
  expect_error("embedding_cache.enabled was false");
  write_file_atomically(run_ / "summary.json", summary);

  // Not a run directory.
  fs::rename(run_ / "state.json", run_ / "x");
  expect_error("not a clipshard run directory");
  fs::rename(run_ / "x", run_ / "state.json");

  // And it still works.
  EXPECT_EQ(export_run(run_, o).rows, 7);
}

}  // namespace
}  // namespace clipshard
