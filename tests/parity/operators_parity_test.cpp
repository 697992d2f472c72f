// The three operators end to end (config -> run -> output.jsonl) against the golden outputs the
// DataFlow-MM operator semantics give with the official code (tests/fixtures/operators/).
#include <cmath>
#include <fstream>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

using ordered = nlohmann::ordered_json;

std::vector<ordered> read_jsonl(const std::filesystem::path& p) {
  std::vector<ordered> rows;
  std::istringstream in(read_file(p));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(ordered::parse(line));
  return rows;
}

// A copy of the operator's directory layout in a temp dir: operators/<op>/input.jsonl, images/
// (symlinks, plus the directory.jpg directory git cannot hold), models/ (symlink).
std::filesystem::path stage(const testing::TempDir& tmp, const std::string& op) {
  namespace fs = std::filesystem;
  const auto root = tmp.path() / "fixtures";
  fs::create_directories(root / "operators" / op);
  fs::create_directories(root / "images");
  for (const auto& e : fs::directory_iterator(testing::fixtures() / "images"))
    if (e.is_regular_file()) fs::create_symlink(e.path(), root / "images" / e.path().filename());
  fs::create_directories(root / "images" / "directory.jpg");
  fs::create_directory_symlink(testing::fixtures() / "models", root / "models");
  fs::copy_file(testing::fixtures() / "operators" / op / "input.jsonl",
                root / "operators" / op / "input.jsonl");
  return root / "operators" / op;
}

struct OperatorRun {
  std::vector<ordered> output;
  std::vector<ordered> golden;
  nlohmann::json summary;
  std::vector<ordered> errors;
};

OperatorRun run_operator(const std::string& op, int batch_size) {
  testing::TempDir tmp;
  const auto dir = stage(tmp, op);
  const auto params =
      nlohmann::json::parse(read_file(testing::fixtures() / "operators" / op / "params.json"));
  nlohmann::json step = {{"operator", params["operator"]},
                         {"model_name", (dir / params["model_name"].get<std::string>()).string()},
                         {"input_image_key", params["input_image_key"]}};
  if (params.contains("threshold")) {
    step["threshold"] = params["threshold"];
    step["input_caption_key"] = params["input_caption_key"];
  } else {
    step["input_text_key"] = params["input_text_key"];
    step["output_key"] = params["output_key"];
  }
  const nlohmann::json config = {{"input", (dir / "input.jsonl").string()},
                                 {"output_dir", (tmp.path() / "run").string()},
                                 {"device", "cpu"},
                                 {"batch_size", batch_size},
                                 {"lines_per_shard", 16},
                                 {"progress_interval_s", 0},
                                 {"pipeline", {step}}};
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(parse_run_config(config), options), kExitOk) << log.str();
  OperatorRun r;
  r.output = read_jsonl(tmp.path() / "run" / "output.jsonl");
  r.golden = read_jsonl(testing::fixtures() / "operators" / op / "golden.jsonl");
  r.errors = read_jsonl(tmp.path() / "run" / "errors.jsonl");
  r.summary = nlohmann::json::parse(read_file(tmp.path() / "run" / "summary.json"));
  return r;
}

void expect_scores_match(const OperatorRun& r, const std::string& key, double* max_diff) {
  ASSERT_EQ(r.output.size(), r.golden.size());
  *max_diff = 0;
  int zero_rows = 0;
  for (size_t i = 0; i < r.golden.size(); ++i) {
    ordered a = r.output[i], g = r.golden[i];
    ASSERT_TRUE(a.contains(key)) << "row " << i;
    const double diff = std::abs(a[key].get<double>() - g[key].get<double>());
    *max_diff = std::max(*max_diff, diff);
    EXPECT_LE(diff, 1e-4) << "row " << i << ": " << a.dump() << " vs " << g.dump();
    if (g[key].get<double>() == 0.0) ++zero_rows;
    a.erase(key);
    g.erase(key);
    EXPECT_EQ(a.dump(), g.dump()) << "pass-through fields / key order differ in row " << i;
  }
  // Every row scored 0.0 by the reference is a bad row here, reported once.
  EXPECT_EQ(static_cast<int>(r.errors.size()), zero_rows);
}

TEST(OperatorParity, ImageCLIPEvaluator) {
  for (int batch : {1, 7}) {
    const OperatorRun r = run_operator("clip_eval", batch);
    double max_diff = 0;
    expect_scores_match(r, "clip_score", &max_diff);
    std::cout << "ImageCLIPEvaluator batch " << batch << ": " << r.output.size()
              << " rows, max |score - golden| = " << max_diff << std::endl;
  }
}

TEST(OperatorParity, ImageLongCLIPEvaluator) {
  const OperatorRun r = run_operator("longclip_eval", 5);
  double max_diff = 0;
  expect_scores_match(r, "longclip_score", &max_diff);
  std::cout << "ImageLongCLIPEvaluator: " << r.output.size()
            << " rows, max |score - golden| = " << max_diff << std::endl;
}

TEST(OperatorParity, ImageClipFilterKeepsExactlyTheGoldenRows) {
  const OperatorRun r = run_operator("clip_filter", 6);
  ASSERT_EQ(r.output.size(), r.golden.size());
  for (size_t i = 0; i < r.golden.size(); ++i) EXPECT_EQ(r.output[i].dump(), r.golden[i].dump());
  EXPECT_EQ(r.summary["operators"][0]["kept"], 30);
  EXPECT_EQ(r.summary["operators"][0]["dropped"], 28);
}

}  // namespace
}  // namespace clipshard
