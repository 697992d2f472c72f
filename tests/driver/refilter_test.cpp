// Re-filtering a finished run: rerunning the same command with only a filter's threshold or
// top_fraction changed re-merges the stored similarities — no worker is built (so no model is
// loaded and no image read: the images are deleted first) — and writes exactly what a fresh run
// with the new settings writes (output.jsonl, errors.jsonl, the per-step files, the summary's
// counts). A change that alters what the shards compute is still refused.
#include <atomic>
#include <fstream>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

// A manifest over copies of fixture images in `dir`/images (so that the test can delete them),
// with bad rows: a missing file, an empty caption, a line that is not JSON.
std::filesystem::path write_dataset(const std::filesystem::path& dir) {
  const auto images = dir / "images";
  std::filesystem::create_directories(images);
  const char* files[] = {"photo_640x480.jpg", "portrait_333x500.jpg", "panorama_1024x200.jpg",
                         "palette_256x192.png", "square_224x224.jpg"};
  for (const char* f : files)
    std::filesystem::copy_file(testing::fixtures() / "images" / f, images / f);
  const char* captions[] = {"a cat",     "a dog in the snow",  "mountains at dawn",
                            "a red car", "two people talking", "a bowl of fruit",
                            "   "};
  const auto path = dir / "m.jsonl";
  std::ofstream out(path);
  for (int i = 0; i < 40; ++i) {
    if (i == 17) {
      out << "{not json\n";
      continue;
    }
    const std::string image = i == 9 ? "missing.jpg" : files[i % 5];
    out << nlohmann::json{{"image", (images / image).string()},
                          {"caption", captions[i % 7]},
                          {"i", i}}
               .dump()
        << "\n";
  }
  return path;
}

// Evaluator, filter, evaluator (so that the per-step files differ), with DataFlow-MM step files in
// the run directory.
nlohmann::json config_for(const std::filesystem::path& manifest, const std::filesystem::path& out,
                          const nlohmann::json& filter_settings) {
  const std::string model = (testing::fixtures() / "models/tiny/hf").string();
  nlohmann::json filter = {{"operator", "ImageClipFilter"}, {"model_name", model}};
  filter.update(filter_settings);
  return {{"input", manifest.string()},
          {"output_dir", out.string()},
          {"device", "cpu"},
          {"batch_size", 4},
          {"lines_per_shard", 6},
          {"progress_interval_s", 0},
          {"step_files", {{"cache_path", (out / "steps").string()}, {"file_name_prefix", "s"}}},
          {"pipeline",
           {{{"operator", "ImageCLIPEvaluator"},
             {"model_name", model},
             {"input_image_key", "image"},
             {"input_text_key", "caption"}},
            filter,
            {{"operator", "ImageCLIPEvaluator"},
             {"model_name", model},
             {"input_image_key", "image"},
             {"input_text_key", "caption"},
             {"output_key", "second_score"}}}}};
}

// Runs `config` in process; counts the processors built (each one loads the pipeline's models).
nlohmann::json run(const nlohmann::json& config, std::atomic<int>* processors_built = nullptr) {
  JobOptions options;
  options.in_process_workers = 2;
  std::ostringstream log;
  options.log = &log;
  const int status = run_job_in_process(parse_run_config(config), options,
                                        [&](const RunConfig& c, const WorkerPlacement& p) {
                                          if (processors_built) ++*processors_built;
                                          return make_clip_processor(c, p);
                                        });
  EXPECT_EQ(status, kExitOk) << log.str();
  return nlohmann::json::parse(
      read_file(std::filesystem::path(config["output_dir"].get<std::string>()) / "summary.json"));
}

// The bytes of every file a run writes that must not depend on how it came about.
void expect_same_outputs(const std::filesystem::path& a, const std::filesystem::path& b) {
  for (const char* f : {"output.jsonl", "errors.jsonl", "steps/s_step1.jsonl",
                        "steps/s_step2.jsonl", "steps/s_step3.jsonl"})
    EXPECT_EQ(read_file(a / f), read_file(b / f)) << f;
}

// The summary's figures that describe the result (not timings, paths or how the run came about).
void expect_same_counts(const nlohmann::json& a, const nlohmann::json& b) {
  for (const char* k :
       {"lines", "rows_in", "rows_out", "blank_lines", "error_lines", "error_rows", "error_records",
        "errors_by_reason", "operators", "error_examples", "merge_settings"})
    EXPECT_EQ(a[k], b[k]) << k;
}

TEST(Refilter, NewThresholdAfterTheImagesAreGoneEqualsAFreshRun) {
  testing::TempDir tmp;
  const auto manifest = write_dataset(tmp.path());
  const auto run_dir = tmp.path() / "run";
  const auto fresh_dir = tmp.path() / "fresh";
  const nlohmann::json first_settings = {{"threshold", 0.05}};
  const nlohmann::json new_settings = {{"threshold", 0.2}};
  const auto fresh = run(config_for(manifest, fresh_dir, new_settings));
  const auto first = run(config_for(manifest, run_dir, first_settings));
  EXPECT_EQ(first["refiltered"], false);
  EXPECT_EQ(first["models_loaded"], true);
  // The thresholds must matter for this data, or the comparison proves nothing.
  ASSERT_NE(first["rows_out"], fresh["rows_out"]);

  std::filesystem::remove_all(tmp.path() / "images");
  std::atomic<int> built{0};
  const auto refiltered = run(config_for(manifest, run_dir, new_settings), &built);
  EXPECT_EQ(built.load(), 0) << "a re-filter built a worker (loads models)";
  EXPECT_EQ(refiltered["models_loaded"], false);
  EXPECT_EQ(refiltered["refiltered"], true);
  EXPECT_EQ(refiltered["refiltered_from"], first["merge_settings"]);
  EXPECT_EQ(refiltered["merge_settings"]["pipeline"][1]["threshold"], 0.2);
  EXPECT_EQ(refiltered["shards"]["finished_this_run"], 0);
  EXPECT_EQ(fresh["refiltered"], false);
  expect_same_outputs(run_dir, fresh_dir);
  expect_same_counts(refiltered, fresh);

  // Back to the first threshold: the first run's outputs again, byte for byte.
  const auto back = run(config_for(manifest, run_dir, first_settings), &built);
  EXPECT_EQ(built.load(), 0);
  EXPECT_EQ(back["refiltered_from"], refiltered["merge_settings"]);
  expect_same_counts(back, first);
  // The same settings again: a plain re-merge, not a re-filter.
  const auto again = run(config_for(manifest, run_dir, first_settings), &built);
  EXPECT_EQ(again["refiltered"], false);
  EXPECT_FALSE(again.contains("refiltered_from"));
}

TEST(Refilter, TopFractionChangeEqualsAFreshRun) {
  testing::TempDir tmp;
  const auto manifest = write_dataset(tmp.path());
  const auto run_dir = tmp.path() / "run";
  run(config_for(manifest, run_dir, {{"threshold", 0.1}}));
  for (double fraction : {0.5, 0.25}) {
    const nlohmann::json settings = {{"threshold", 0.1}, {"top_fraction", fraction}};
    const auto fresh_dir = tmp.path() / ("fresh" + std::to_string(fraction));
    const auto fresh = run(config_for(manifest, fresh_dir, settings));
    std::atomic<int> built{0};
    const auto refiltered = run(config_for(manifest, run_dir, settings), &built);
    EXPECT_EQ(built.load(), 0);
    EXPECT_EQ(refiltered["refiltered"], true);
    EXPECT_EQ(refiltered["operators"][1]["top_fraction"], fraction);
    expect_same_outputs(run_dir, fresh_dir);
    expect_same_counts(refiltered, fresh);
  }
}

TEST(Refilter, ChangesToWhatTheShardsComputeAreStillRefused) {
  testing::TempDir tmp;
  const auto manifest = write_dataset(tmp.path());
  const auto run_dir = tmp.path() / "run";
  run(config_for(manifest, run_dir, {{"threshold", 0.1}}));
  const std::string before = read_file(run_dir / "output.jsonl");
  auto expect_refused = [&](nlohmann::json config, const std::string& changed) {
    config["pipeline"][1]["threshold"] = 0.3;  // with a filter change too: still refused
    std::atomic<int> built{0};
    JobOptions options;
    std::ostringstream log;
    options.log = &log;
    try {
      run_job_in_process(parse_run_config(config), options,
                         [&](const RunConfig& c, const WorkerPlacement& p) {
                           ++built;
                           return make_clip_processor(c, p);
                         });
      ADD_FAILURE() << "not refused: " << changed;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("different config"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(changed), std::string::npos) << e.what();
    }
    EXPECT_EQ(built.load(), 0);
  };
  auto other_model = config_for(manifest, run_dir, {{"threshold", 0.1}});
  other_model["pipeline"][1]["model_name"] = (testing::fixtures() / "models/micro/hf").string();
  expect_refused(other_model, "/pipeline/1/model_name");
  auto other_key = config_for(manifest, run_dir, {{"threshold", 0.1}});
  other_key["pipeline"][1]["input_caption_key"] = "i";
  expect_refused(other_key, "/pipeline/1/input_text_key");
  auto other_root = config_for(manifest, run_dir, {{"threshold", 0.1}});
  other_root["image_root"] = tmp.path().string();
  expect_refused(other_root, "/image_root");
  auto other_output_key = config_for(manifest, run_dir, {{"threshold", 0.1}});
  other_output_key["pipeline"][0]["output_key"] = "score";
  expect_refused(other_output_key, "/pipeline/0/output_key");
  EXPECT_EQ(read_file(run_dir / "output.jsonl"), before);  // nothing was rewritten
}

}  // namespace
}  // namespace clipshard
