// The CUDA path: operators on the GPU (precision auto = fp32 for the CLIP evaluator, and fp16)
// agree with the golden fp32 outputs within fp16 precision. Skipped (visibly) when no GPU is
// present.
#include <torch/cuda.h>

#include <cmath>
#include <set>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "models/clip/model_loader.h"
#include "models/image/image_decoder.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

TEST(Cuda, TinyModelEmbeddingsMatchCpuWithinFp16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU path not exercised";
  ModelRequest cpu;
  cpu.name_or_path = (testing::fixtures() / "models/tiny/hf").string();
  cpu.family = ModelFamily::kClip;
  cpu.device = "cpu";
  ModelRequest gpu = cpu;
  gpu.device = "cuda";
  LoadedModel a = load_model(cpu), b = load_model(gpu);
  const at::Tensor images = at::randn({4, 3, 224, 224});
  const at::Tensor ids = at::tensor({49406, 320, 1929, 539, 320, 2368, 49407}).unsqueeze(0);
  const double image_diff =
      (a.model->encode_image(images) - b.model->encode_image(images)).abs().max().item<double>();
  const double text_diff =
      (a.model->encode_text(ids) - b.model->encode_text(ids)).abs().max().item<double>();
  std::cout << "fp16 CUDA vs fp32 CPU: image " << image_diff << ", text " << text_diff << "\n";
  EXPECT_LT(image_diff, 5e-2);
  EXPECT_LT(text_diff, 5e-2);
}

TEST(Cuda, EvaluatorOnTheGpuMatchesGolden) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU path not exercised";
  // auto: DataFlow-MM runs the CLIP evaluator in fp32 on CUDA too.
  for (const std::string precision : {"auto", "fp16"}) {
    SCOPED_TRACE(precision);
    testing::TempDir tmp;
    const auto op_dir = testing::fixtures() / "operators" / "clip_eval";
    // Only the rows whose images exist in the repo (directory.jpg cannot be stored in git).
    const nlohmann::json config = {
        {"input", (op_dir / "input.jsonl").string()},
        {"output_dir", (tmp.path() / "run").string()},
        {"device", "cuda"},
        {"precision", precision},
        {"batch_size", 16},
        {"progress_interval_s", 0},
        {"pipeline",
         {{{"operator", "ImageCLIPEvaluator"},
           {"model_name", (testing::fixtures() / "models/tiny/hf").string()}}}}};
    JobOptions options;
    std::ostringstream log;
    options.log = &log;
    ASSERT_EQ(run_job_in_process(parse_run_config(config), options), kExitOk) << log.str();
    // A build without OpenCV (the lean GPU build) cannot decode the BMP rows: they are
    // unsupported_format records with score 0.0 there, and only those are left out of the
    // comparison.
    std::set<int64_t> undecodable;
    if (!image_decoder_has_opencv()) {
      std::istringstream errors(read_file(tmp.path() / "run" / "errors.jsonl"));
      for (std::string e; std::getline(errors, e);) {
        const auto record = nlohmann::json::parse(e);
        if (record["reason"] == "unsupported_format")
          undecodable.insert(record["line"].get<int64_t>());
      }
    }
    std::istringstream out(read_file(tmp.path() / "run" / "output.jsonl"));
    std::istringstream golden(read_file(op_dir / "golden.jsonl"));
    double max_diff = 0;
    int64_t line = 0, compared = 0;
    for (std::string a, g; std::getline(out, a) && std::getline(golden, g);) {
      if (undecodable.count(++line)) continue;
      const double sa = nlohmann::json::parse(a)["clip_score"],
                   sg = nlohmann::json::parse(g)["clip_score"];
      max_diff = std::max(max_diff, std::abs(sa - sg));
      ++compared;
    }
    const auto summary = nlohmann::json::parse(read_file(tmp.path() / "run" / "summary.json"));
    EXPECT_EQ(summary["models"][0]["device"], "cuda");
    EXPECT_EQ(summary["models"][0]["precision"], precision == "auto" ? "fp32" : precision);
    std::cout << "CUDA " << precision << " ImageCLIPEvaluator: max |score - golden| = " << max_diff
              << " over " << compared << " rows (" << undecodable.size()
              << " BMP rows left out: no OpenCV)\n";
    EXPECT_GT(compared, 40);
    EXPECT_LE(undecodable.size(), 2u);
    EXPECT_LT(max_diff, 1e-2);
  }
}

}  // namespace
}  // namespace clipshard
