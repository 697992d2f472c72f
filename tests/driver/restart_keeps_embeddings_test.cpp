// --restart keeps the embeddings of the shards it discards: they are merged into the run's
// embeddings.h5 first, so a restart with another batch_size computes no embedding again and gives
// the same output. The run's cache also describes its tables (model name, format, precision).
#include <fstream>
#include <sstream>

#include "common/fixture_manifest.h"
#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_reader.h"

namespace clipshard {
namespace {

std::filesystem::path write_manifest(const std::filesystem::path& dir) {
  return testing::write_fixture_manifest(
      dir, 24,
      {"photo_640x480.jpg", "portrait_333x500.jpg", "panorama_1024x200.jpg", "palette_256x192.png",
       "missing.jpg"},
      {"a cat", "a dog in the snow", "mountains at dawn", "a red car", "two people talking",
       "   "});
}

nlohmann::json config_for(const std::filesystem::path& manifest, const std::filesystem::path& out,
                          int batch_size) {
  return {{"input", manifest.string()},
          {"output_dir", out.string()},
          {"device", "cpu"},
          {"batch_size", batch_size},
          {"lines_per_shard", 5},
          {"progress_interval_s", 0},
          {"pipeline",
           {{{"operator", "ImageClipFilter"},
             {"model_name", (testing::fixtures() / "models/tiny/hf").string()},
             {"threshold", 0.05}}}}};
}

nlohmann::json run(const nlohmann::json& config, bool restart, std::string* log_text = nullptr) {
  JobOptions options;
  options.restart = restart;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(parse_run_config(config), options), kExitOk) << log.str();
  if (log_text) *log_text = log.str();
  return nlohmann::json::parse(
      read_file(std::filesystem::path(config["output_dir"].get<std::string>()) / "summary.json"));
}

TEST(RestartKeepsEmbeddings, RestartWithAnotherBatchSizeComputesNothing) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  const auto dir = tmp.path() / "run";
  const auto first = run(config_for(manifest, dir, 4), false);
  EXPECT_GT(first["embeddings"]["image_computed"].get<int>(), 0);
  EXPECT_GT(first["embeddings"]["text_computed"].get<int>(), 0);
  const std::string output = read_file(dir / "output.jsonl");
  const std::string errors = read_file(dir / "errors.jsonl");

  // A run stopped after its shards and before the final merge: the embeddings are only in parts/
  // (embeddings.h5 is written by that merge).
  std::filesystem::remove(dir / "embeddings.h5");
  std::filesystem::remove(dir / "summary.json");
  std::filesystem::remove(dir / "output.jsonl");

  std::string log;
  const auto second = run(config_for(manifest, dir, 3), true, &log);
  EXPECT_NE(log.find("--restart: kept"), std::string::npos) << log;
  EXPECT_EQ(second["embeddings"]["image_computed"], 0);
  EXPECT_EQ(second["embeddings"]["text_computed"], 0);
  EXPECT_EQ(second["embeddings"]["image_reused"], first["embeddings"]["image_computed"]);
  EXPECT_EQ(second["embeddings"]["text_reused"], first["embeddings"]["text_computed"]);
  EXPECT_EQ(read_file(dir / "output.jsonl"), output);
  EXPECT_EQ(read_file(dir / "errors.jsonl"), errors);

  // The run's cache says what its embeddings were computed with.
  EmbeddingCacheReader reader(dir / "embeddings.h5");
  const auto tables = reader.tables();
  ASSERT_EQ(tables.size(), 2u);  // image and text of the one model
  for (const CacheTable& table : tables) {
    const TableDescription d = reader.description(table);
    EXPECT_EQ(d.model_name, (testing::fixtures() / "models/tiny/hf").string());
    EXPECT_EQ(d.model_format, "huggingface-dir");
    EXPECT_EQ(d.fingerprint, table.model_id);
    EXPECT_FALSE(d.model_path.empty());
    EXPECT_EQ(d.precision, "fp32");
    EXPECT_EQ(d.normalized, 1);
  }
}

}  // namespace
}  // namespace clipshard
