#include "common/test_paths.h"
#include "driver/cli.h"
#include "driver/run_config.h"

namespace clipshard {
namespace {

nlohmann::json minimal() {
  return {{"input", "m.jsonl"},
          {"output_dir", "out"},
          {"pipeline", {{{"operator", "ImageClipFilter"}, {"threshold", 0.3}}}}};
}

std::string error_of(const nlohmann::json& config) {
  try {
    parse_run_config(config);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(RunConfig, DefaultsFollowTheSpec) {
  const RunConfig c = parse_run_config(minimal());
  ASSERT_EQ(c.pipeline.size(), 1u);
  const OperatorSpec& op = c.pipeline[0];
  EXPECT_EQ(op.model_name, "openai/clip-vit-base-patch32");
  EXPECT_EQ(op.image_key, "image");
  EXPECT_EQ(op.text_key, "caption");
  EXPECT_DOUBLE_EQ(op.threshold, 0.3);
  const auto eval = parse_operator_spec({{"operator", "ImageCLIPEvaluator"}});
  EXPECT_EQ(eval.image_key, "image_path");
  EXPECT_EQ(eval.text_key, "text");
  EXPECT_EQ(eval.output_key, "clip_score");
  const auto longclip = parse_operator_spec({{"operator", "ImageLongCLIPEvaluator"}});
  EXPECT_EQ(longclip.model_name, "BeichenZhang/LongCLIP-L-336px");
  EXPECT_EQ(longclip.output_key, "longclip_score");
  EXPECT_DOUBLE_EQ(parse_operator_spec({{"operator", "ImageClipFilter"}}).threshold, 0.25);
}

TEST(RunConfig, ErrorsNameTheKey) {
  auto c = minimal();
  c["batch_sise"] = 3;
  EXPECT_NE(error_of(c).find("\"batch_sise\""), std::string::npos);
  c = minimal();
  c["batch_size"] = -1;
  EXPECT_NE(error_of(c).find("\"batch_size\""), std::string::npos);
  c = minimal();
  c["batch_size"] = "8";
  EXPECT_NE(error_of(c).find("must be an integer"), std::string::npos);
  c = minimal();
  c["pipeline"][0]["treshold"] = 0.3;
  EXPECT_NE(error_of(c).find("\"treshold\""), std::string::npos);
  EXPECT_NE(error_of(c).find("pipeline.0"), std::string::npos);
  c = minimal();
  c["pipeline"][0]["operator"] = "ImageClipFiltr";
  EXPECT_NE(error_of(c).find("unknown operator \"ImageClipFiltr\""), std::string::npos);
  c = minimal();
  c["pipeline"][0]["top_fraction"] = 1.5;
  EXPECT_NE(error_of(c).find("top_fraction"), std::string::npos);
  c = minimal();
  c["embedding_cache"] = {{"lossy", true}};
  EXPECT_NE(error_of(c).find("embedding_cache.lossy"), std::string::npos);
  c = minimal();
  c.erase("output_dir");
  EXPECT_NE(error_of(c).find("output_dir"), std::string::npos);
}

TEST(RunConfig, SetOverridesDottedPaths) {
  auto c = minimal();
  apply_set(c, "batch_size=8");
  apply_set(c, "pipeline.0.threshold=0.5");
  apply_set(c, "embedding_cache.enabled=false");
  apply_set(c, "output_dir=/tmp/x y");
  const RunConfig parsed = parse_run_config(c);
  EXPECT_EQ(parsed.processing.batch_size, 8);
  EXPECT_DOUBLE_EQ(parsed.pipeline[0].threshold, 0.5);
  EXPECT_FALSE(parsed.processing.cache.write);
  EXPECT_EQ(parsed.output_dir, "/tmp/x y");
  EXPECT_THROW(apply_set(c, "novalue"), std::invalid_argument);
  EXPECT_THROW(apply_set(c, "pipeline.7.threshold=1"), std::invalid_argument);
}

TEST(RunConfig, FlagsFormBuildsTheSameConfig) {
  const auto c = config_from_flags("ImageClipFilter", "m", {"a.jsonl"}, "out",
                                   {"threshold=0.3", "input_image_key=img"});
  const RunConfig parsed = parse_run_config(c);
  EXPECT_DOUBLE_EQ(parsed.pipeline[0].threshold, 0.3);
  EXPECT_EQ(parsed.pipeline[0].image_key, "img");
  EXPECT_EQ(parsed.pipeline[0].model_name, "m");
  EXPECT_THROW(config_from_flags("ImageClipFilter", "", {"a"}, "o", {"threshold"}),
               std::invalid_argument);
}

TEST(RunConfig, FingerprintChangesWithResultSettingsOnly) {
  auto a = parse_run_config(minimal());
  auto b = a;
  b.progress_interval_s = 1;
  b.processing.decode_threads = 7;
  EXPECT_EQ(result_fingerprint(a), result_fingerprint(b));
  EXPECT_EQ(merge_settings(a), merge_settings(b));
  // A filter's threshold and top_fraction only change the merge: they are merge settings.
  b.pipeline[0].threshold = 0.31;
  EXPECT_EQ(result_fingerprint(a), result_fingerprint(b));
  EXPECT_NE(merge_settings(a), merge_settings(b));
  auto c = a;
  c.pipeline[0].top_fraction = 0.5;
  EXPECT_EQ(result_fingerprint(a), result_fingerprint(c));
  EXPECT_NE(merge_settings(a), merge_settings(c));
  auto d = a;
  d.pipeline[0].model_name = "other";
  EXPECT_NE(result_fingerprint(a), result_fingerprint(d));
  EXPECT_EQ(merge_settings(a), merge_settings(d));
}

TEST(RunConfig, PrecisionPerRunAndPerOperator) {
  EXPECT_EQ(parse_run_config(minimal()).precision, "auto");
  EXPECT_EQ(parse_run_config(minimal()).pipeline[0].precision, "");  // = the run's
  for (const std::string p : {"auto", "fp32", "fp16", "bf16"}) {
    auto c = minimal();
    c["precision"] = p;
    c["pipeline"][0]["precision"] = p;
    const RunConfig parsed = parse_run_config(c);
    EXPECT_EQ(parsed.precision, p);
    EXPECT_EQ(parsed.pipeline[0].precision, p);
  }
  auto c = minimal();
  c["precision"] = nullptr;
  c["pipeline"][0]["precision"] = nullptr;
  EXPECT_EQ(parse_run_config(c).precision, "auto");
  EXPECT_EQ(parse_run_config(c).pipeline[0].precision, "");
  // The --op form takes it as an operator parameter.
  const auto flags =
      config_from_flags("ImageCLIPEvaluator", "m", {"a.jsonl"}, "out", {"precision=bf16"});
  EXPECT_EQ(parse_run_config(flags).pipeline[0].precision, "bf16");
}

TEST(RunConfig, UnknownPrecisionNamesTheKey) {
  auto c = minimal();
  c["precision"] = "fp64";
  EXPECT_NE(error_of(c).find("\"precision\""), std::string::npos) << error_of(c);
  EXPECT_NE(error_of(c).find("fp64"), std::string::npos);
  c = minimal();
  c["precision"] = 16;
  EXPECT_NE(error_of(c).find("\"precision\": must be a string"), std::string::npos) << error_of(c);
  c = minimal();
  c["pipeline"][0]["precision"] = "half";
  EXPECT_NE(error_of(c).find("pipeline.0"), std::string::npos) << error_of(c);
  EXPECT_NE(error_of(c).find("\"precision\""), std::string::npos) << error_of(c);
}

TEST(RunConfig, Fp16OnAnExplicitCpuIsRefusedUpFront) {
  auto c = minimal();
  c["device"] = "cpu";
  c["precision"] = "fp16";
  EXPECT_NE(error_of(c).find("\"precision\": fp16 is not available on the CPU"), std::string::npos)
      << error_of(c);
  c["precision"] = "auto";
  c["pipeline"][0]["precision"] = "fp16";
  EXPECT_NE(error_of(c).find("\"pipeline.0.precision\""), std::string::npos) << error_of(c);
  c["pipeline"][0]["device"] = "cuda";  // the operator's own device: allowed (CUDA checked at load)
  EXPECT_EQ(error_of(c), "");
  c = minimal();
  c["precision"] = "fp16";  // device auto: decided by the workers' hardware
  EXPECT_EQ(error_of(c), "");
}

TEST(RunConfig, PrecisionIsPartOfTheFingerprintOnlyWhenSet) {
  const auto a = parse_run_config(minimal());
  EXPECT_FALSE(result_fingerprint(a).contains("precision"));  // existing runs keep their identity
  auto b = a;
  b.precision = "bf16";
  EXPECT_NE(result_fingerprint(a), result_fingerprint(b));
  auto c = a;
  c.pipeline[0].precision = "fp32";
  EXPECT_NE(result_fingerprint(a), result_fingerprint(c));
}

TEST(OperatorPrecision, AutoIsDataFlowMmsChoice) {
  using K = OperatorKind;
  for (const std::string automatic : {"", "auto"}) {
    EXPECT_EQ(resolve_precision(K::kClipEvaluator, automatic, /*cuda=*/true), "fp32");
    EXPECT_EQ(resolve_precision(K::kClipFilter, automatic, true), "fp32");
    EXPECT_EQ(resolve_precision(K::kLongClipEvaluator, automatic, true), "fp16");
    EXPECT_EQ(resolve_precision(K::kClipEvaluator, automatic, /*cuda=*/false), "fp32");
    EXPECT_EQ(resolve_precision(K::kClipFilter, automatic, false), "fp32");
    EXPECT_EQ(resolve_precision(K::kLongClipEvaluator, automatic, false), "fp32");
  }
  EXPECT_EQ(resolve_precision(K::kClipEvaluator, "bf16", false), "bf16");
  EXPECT_EQ(resolve_precision(K::kLongClipEvaluator, "fp32", true), "fp32");
  EXPECT_THROW(resolve_precision(K::kClipEvaluator, "fp8", true), std::invalid_argument);
}

}  // namespace
}  // namespace clipshard
