// The embedding cache end to end: a re-threshold (or another operator on the same model) reuses
// every embedding of the earlier run and gives exactly the output of a fresh run.
#include <fstream>
#include <sstream>

#include "common/fixture_manifest.h"
#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

std::filesystem::path write_manifest(const std::filesystem::path& dir) {
  return testing::write_fixture_manifest(
      dir, 30,
      {"photo_640x480.jpg", "portrait_333x500.jpg", "panorama_1024x200.jpg", "palette_256x192.png",
       "cmyk_300x400.jpg", "missing.jpg"},
      {"a cat", "a dog in the snow", "mountains at dawn", "a red car", "two people talking",
       "a bowl of fruit", "   "});
}

nlohmann::json filter_config(const std::filesystem::path& manifest,
                             const std::filesystem::path& out, double threshold) {
  return {{"input", manifest.string()},
          {"output_dir", out.string()},
          {"device", "cpu"},
          {"batch_size", 4},
          {"lines_per_shard", 7},
          {"progress_interval_s", 0},
          {"pipeline",
           {{{"operator", "ImageClipFilter"},
             {"model_name", (testing::fixtures() / "models/tiny/hf").string()},
             {"threshold", threshold}}}}};
}

nlohmann::json run(const nlohmann::json& config, bool restart) {
  JobOptions options;
  options.restart = restart;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(parse_run_config(config), options), kExitOk) << log.str();
  return nlohmann::json::parse(
      read_file(std::filesystem::path(config["output_dir"].get<std::string>()) / "summary.json"));
}

TEST(EmbeddingCacheReuse, RethresholdComputesNothing) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  const auto first = run(filter_config(manifest, tmp.path() / "run", 0.05), false);
  EXPECT_GT(first["embeddings"]["image_computed"].get<int>(), 0);
  EXPECT_EQ(first["embeddings"]["image_reused"], 0);

  // Another threshold on the same directory re-filters the finished shards (tests/driver/
  // refilter_test.cpp); with --restart the shards are recomputed and reuse every embedding.
  const auto second = run(filter_config(manifest, tmp.path() / "run", 0.2), true);
  EXPECT_EQ(second["embeddings"]["image_computed"], 0);
  EXPECT_EQ(second["embeddings"]["text_computed"], 0);
  EXPECT_EQ(second["embeddings"]["image_reused"], first["embeddings"]["image_computed"]);
  EXPECT_EQ(second["embeddings"]["text_reused"], first["embeddings"]["text_computed"]);

  // The same output as a fresh run with that threshold, byte for byte.
  run(filter_config(manifest, tmp.path() / "fresh", 0.2), false);
  EXPECT_EQ(read_file(tmp.path() / "run" / "output.jsonl"),
            read_file(tmp.path() / "fresh" / "output.jsonl"));
  EXPECT_EQ(read_file(tmp.path() / "run" / "errors.jsonl"),
            read_file(tmp.path() / "fresh" / "errors.jsonl"));
}

TEST(EmbeddingCacheReuse, AnotherOperatorOnTheSameModelReusesACacheFile) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  run(filter_config(manifest, tmp.path() / "filter", 0.1), false);
  // An evaluator with the filter's model and keys: its images and captions are in the cache.
  auto config = filter_config(manifest, tmp.path() / "eval", 0.1);
  config["pipeline"] = {{{"operator", "ImageCLIPEvaluator"},
                         {"model_name", (testing::fixtures() / "models/tiny/hf").string()},
                         {"input_image_key", "image"},
                         {"input_text_key", "caption"}}};
  config["embedding_cache"] = {{"reuse", {(tmp.path() / "filter" / "embeddings.h5").string()}}};
  const auto summary = run(config, false);
  EXPECT_EQ(summary["embeddings"]["image_computed"], 0);
  EXPECT_EQ(summary["embeddings"]["text_computed"], 0);
  EXPECT_GT(summary["embeddings"]["image_reused"].get<int>(), 0);
}

}  // namespace
}  // namespace clipshard
