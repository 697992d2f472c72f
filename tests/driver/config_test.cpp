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
  EXPECT_EQ(parsed.batch_size, 8);
  EXPECT_DOUBLE_EQ(parsed.pipeline[0].threshold, 0.5);
  EXPECT_FALSE(parsed.embedding_cache.enabled);
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
  b.decode_threads = 7;
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

}  // namespace
}  // namespace clipshard
