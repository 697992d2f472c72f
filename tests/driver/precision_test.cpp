// Precision and device as part of a run's identity: bf16 and fp32 runs on the CPU, summary.json's
// models section, a rerun or resume that would compute in other numerics is refused, and an
// embedding cache written in one precision is never reused by a run in another.
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/fixture_manifest.h"
#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/model_identity.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

fs::path write_manifest(const fs::path& dir) {
  return testing::write_fixture_manifest(
      dir, 20,
      {"photo_640x480.jpg", "portrait_333x500.jpg", "panorama_1024x200.jpg", "palette_256x192.png",
       "cmyk_300x400.jpg"},
      {"a cat", "a dog in the snow", "mountains at dawn", "a red car", "two people talking",
       "a bowl of fruit"});
}

// An evaluator and a filter on the tiny model, on the CPU, in `precision`.
nlohmann::json config(const fs::path& manifest, const fs::path& out, const std::string& precision) {
  const std::string model = (testing::fixtures() / "models/tiny/hf").string();
  return {{"input", manifest.string()},
          {"output_dir", out.string()},
          {"device", "cpu"},
          {"precision", precision},
          {"batch_size", 4},
          {"lines_per_shard", 5},
          {"progress_interval_s", 0},
          {"pipeline",
           {{{"operator", "ImageCLIPEvaluator"},
             {"model_name", model},
             {"input_image_key", "image"},
             {"input_text_key", "caption"}},
            {{"operator", "ImageClipFilter"}, {"model_name", model}, {"threshold", 0.0}}}}};
}

nlohmann::json run(const nlohmann::json& c, std::string* log_out = nullptr) {
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(parse_run_config(c), options), kExitOk) << log.str();
  if (log_out) *log_out = log.str();
  return nlohmann::json::parse(
      read_file(fs::path(c["output_dir"].get<std::string>()) / "summary.json"));
}

// The message run_job_in_process throws for `c` ("" when it runs).
std::string refusal(const nlohmann::json& c) {
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  try {
    run_job_in_process(parse_run_config(c), options);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::vector<double> scores(const fs::path& run_dir) {
  std::vector<double> out;
  std::istringstream in(read_file(run_dir / "output.jsonl"));
  for (std::string line; std::getline(in, line);)
    out.push_back(nlohmann::json::parse(line)["clip_score"].get<double>());
  return out;
}

TEST(Precision, Bf16AndFp32RunsCompleteOnTheCpuWithTheModelsInTheSummary) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  std::string log;
  const auto fp32 = run(config(manifest, tmp.path() / "fp32", "fp32"));
  const auto bf16 = run(config(manifest, tmp.path() / "bf16", "bf16"), &log);
  for (const auto* s : {&fp32, &bf16}) {
    const std::string precision = s == &fp32 ? "fp32" : "bf16";
    ASSERT_EQ((*s)["models"].size(), 2u) << s->dump(2);
    for (const auto& m : (*s)["models"]) {
      EXPECT_EQ(m["device"], "cpu");
      EXPECT_EQ(m["precision"], precision);
      EXPECT_EQ(m["format"], "huggingface-dir");
      EXPECT_EQ(fs::path(m["weights_file"].get<std::string>()).filename(), "model.safetensors");
      EXPECT_TRUE(std::regex_match(m["fingerprint"].get<std::string>(), std::regex("[0-9a-f]{32}")))
          << m.dump();
      EXPECT_EQ(m["devices"], nlohmann::json({{"1", "cpu"}}));
    }
    EXPECT_EQ((*s)["models"][0]["operator"], "ImageCLIPEvaluator");
    EXPECT_EQ((*s)["models"][1]["operator"], "ImageClipFilter");
    EXPECT_EQ((*s)["rows_out"], 20);
  }
  // The same weights, other numerics: the scores differ a little, and bf16 was really used.
  EXPECT_EQ(fp32["models"][0]["fingerprint"], bf16["models"][0]["fingerprint"]);
  const auto a = scores(tmp.path() / "fp32"), b = scores(tmp.path() / "bf16");
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
  EXPECT_GT(max_diff, 0.0);
  EXPECT_LT(max_diff, 0.05);
  // Logged per worker at model load, and recorded in state.json.
  EXPECT_NE(log.find("rank 1: ImageCLIPEvaluator: "), std::string::npos) << log;
  EXPECT_NE(log.find("on cpu, bf16"), std::string::npos) << log;
  const auto state = nlohmann::json::parse(read_file(tmp.path() / "bf16" / "state.json"));
  EXPECT_EQ(state["resolved"]["operators"][0]["precision"], "bf16");
  EXPECT_EQ(state["resolved"]["operators"][0]["device_type"], "cpu");
}

TEST(Precision, ARerunWithAnotherPrecisionRefusesToResume) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  run(config(manifest, tmp.path() / "run", "fp32"));
  const std::string why = refusal(config(manifest, tmp.path() / "run", "bf16"));
  EXPECT_NE(why.find("different config"), std::string::npos) << why;
  EXPECT_NE(why.find("/precision"), std::string::npos) << why;
  EXPECT_NE(why.find("--restart"), std::string::npos) << why;
}

// A resume whose workers resolve `auto` differently (other hardware) is refused, naming what
// changed. The other hardware is simulated by the record in state.json: this machine has no GPU.
TEST(Precision, AResumeThatWouldResolveDifferentlyIsRefused) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  auto c = config(manifest, tmp.path() / "run", "auto");
  run(c);
  const fs::path dir = tmp.path() / "run";
  auto state = nlohmann::json::parse(read_file(dir / "state.json"));
  EXPECT_EQ(state["resolved"]["operators"][1]["precision"], "fp32");  // auto on the CPU
  // A shard left to do, as after a crash: an unchanged resume is accepted.
  fs::remove(dir / "parts" / "shard-00000003.done.json");
  EXPECT_EQ(refusal(c), "");
  EXPECT_TRUE(fs::exists(dir / "parts" / "shard-00000003.done.json"));
  // The run was computed on CUDA in fp16: resuming it on this CPU is refused.
  fs::remove(dir / "parts" / "shard-00000003.done.json");
  for (auto& op : state["resolved"]["operators"]) {
    op["device_type"] = "cuda";
    op["precision"] = "fp16";
  }
  write_file_atomically(dir / "state.json", state.dump(2));
  const std::string why = refusal(c);
  EXPECT_NE(why.find("device type cuda -> cpu"), std::string::npos) << why;
  EXPECT_NE(why.find("precision fp16 -> fp32"), std::string::npos) << why;
  EXPECT_NE(why.find("pipeline.0 (ImageCLIPEvaluator)"), std::string::npos) << why;
  EXPECT_NE(why.find("--restart"), std::string::npos) << why;
  EXPECT_FALSE(fs::exists(dir / "parts" / "shard-00000003.done.json"));  // nothing computed
  EXPECT_TRUE(fs::exists(dir / "state.json"));  // the finished shards stay protected
}

TEST(Precision, AFreshRunNeverReusesEmbeddingsOfAnotherPrecision) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  const auto bf16 = run(config(manifest, tmp.path() / "bf16", "bf16"));
  EXPECT_GT(bf16["embeddings"]["image_computed"].get<int>(), 0);
  const std::string cache = (tmp.path() / "bf16" / "embeddings.h5").string();

  // fp32 with the bf16 run's cache: every embedding is computed again.
  auto c = config(manifest, tmp.path() / "fp32", "fp32");
  c["embedding_cache"] = {{"reuse", {cache}}};
  const auto fp32 = run(c);
  EXPECT_EQ(fp32["embeddings"]["image_reused"], 0);
  EXPECT_EQ(fp32["embeddings"]["text_reused"], 0);
  EXPECT_EQ(fp32["embeddings"]["image_computed"], bf16["embeddings"]["image_computed"]);
  EXPECT_EQ(fp32["embeddings"]["text_computed"], bf16["embeddings"]["text_computed"]);
  // Its scores are those of a plain fp32 run, not bf16's.
  run(config(manifest, tmp.path() / "plain", "fp32"));
  EXPECT_EQ(read_file(tmp.path() / "fp32" / "output.jsonl"),
            read_file(tmp.path() / "plain" / "output.jsonl"));

  // The control: another bf16 run takes every embedding from that cache.
  c = config(manifest, tmp.path() / "bf16-again", "bf16");
  c["embedding_cache"] = {{"reuse", {cache}}};
  const auto again = run(c);
  EXPECT_EQ(again["embeddings"]["image_computed"], 0);
  EXPECT_EQ(again["embeddings"]["text_computed"], 0);
  EXPECT_EQ(read_file(tmp.path() / "bf16-again" / "output.jsonl"),
            read_file(tmp.path() / "bf16" / "output.jsonl"));
}

OperatorModelInfo info(const std::string& device, const std::string& precision,
                       const std::string& file = "/m/model.safetensors") {
  return {"ImageCLIPEvaluator",
          "m",
          "/m",
          file,
          "huggingface-dir",
          "0123",
          device,
          device.substr(0, device.find(':')),
          precision};
}

RunIdentity identity() {
  return {nlohmann::json{{"x", 1}}, nlohmann::json::array(), 1, 1, nlohmann::json()};
}

TEST(ResolvedModels, RanksMustAgreeAndTheSummaryListsTheirDevices) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  check_or_write_state(dir, identity());
  std::ostringstream log;
  ResolvedModels models(dir, /*check=*/true);
  models.accept(1, encode_models({info("cuda:0", "fp16")}), log);
  models.accept(2, encode_models({info("cuda:1", "fp16", "/other/model.safetensors")}), log);
  EXPECT_EQ(read_resolved_state(dir)["operators"][0]["precision"], "fp16");
  try {
    models.accept(3, encode_models({info("cpu", "fp16")}), log);
    ADD_FAILURE() << "a rank on the CPU was accepted among CUDA ranks";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 -> rank 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("device type cuda -> cpu"), std::string::npos);
  }
  const auto summary = models.summary({});
  ASSERT_EQ(summary.size(), 1u);
  EXPECT_EQ(summary[0]["device"], "cuda");
  EXPECT_EQ(summary[0]["precision"], "fp16");
  EXPECT_EQ(summary[0]["devices"], nlohmann::json({{"1", "cuda:0"}, {"2", "cuda:1"}}));
  EXPECT_EQ(summary[0]["weights_file"],
            nlohmann::json({{"1", "/m/model.safetensors"}, {"2", "/other/model.safetensors"}}));

  // Without reports (nothing left to compute), the summary comes from state.json.
  ResolvedModels later(dir, /*check=*/false);
  later.accept(1, encode_models({info("cpu", "fp32")}), log);  // not checked
  const auto recorded = later.summary({});
  EXPECT_EQ(recorded[0]["device"], "cuda");
  EXPECT_EQ(recorded[0]["precision"], "fp16");
}

}  // namespace
}  // namespace clipshard
