// Canonical layout: dims inference, Hugging Face <-> OpenAI name mapping, config handling.
#include "models/clip/clip_layout.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/test_paths.h"
#include "models/clip/random_model.h"
#include "parity/clip/fixture_io.h"

namespace clipshard {
namespace {

using testing::fixtures;

// Shape-only state dict (untouched allocations: cheap even for LongCLIP-L).
StateDict shapes_only(const ClipDims& d) {
  StateDict sd;
  for (const auto& [name, shape] : expected_tensors(d)) sd[name] = torch::empty(shape);
  return sd;
}

TEST(ClipLayout, InfersDimsOfEveryPreset) {
  for (const auto& preset : preset_names()) {
    SCOPED_TRACE(preset);
    const ClipDims want = preset_dims(preset);
    const ClipDims got = infer_dims(shapes_only(want));
    EXPECT_EQ(got.vision_width, want.vision_width);
    EXPECT_EQ(got.vision_layers, want.vision_layers);
    EXPECT_EQ(got.vision_heads, want.vision_heads);
    EXPECT_EQ(got.vision_mlp, want.vision_mlp);
    EXPECT_EQ(got.vision_patch, want.vision_patch);
    EXPECT_EQ(got.image_resolution, want.image_resolution);
    EXPECT_EQ(got.text_width, want.text_width);
    EXPECT_EQ(got.text_layers, want.text_layers);
    EXPECT_EQ(got.text_heads, want.text_heads);
    EXPECT_EQ(got.context_length, want.context_length);
    EXPECT_EQ(got.vocab_size, want.vocab_size);
    EXPECT_EQ(got.embed_dim, want.embed_dim);
    EXPECT_EQ(got.long_context, want.long_context);
  }
}

TEST(ClipLayout, RealArchitecturesHaveTheOfficialShapes) {
  const ClipDims b32 = infer_dims(shapes_only(preset_dims("vit-b-32")));
  EXPECT_EQ(b32.vision_width, 768);
  EXPECT_EQ(b32.vision_heads, 12);
  EXPECT_EQ(b32.vision_layers, 12);
  EXPECT_EQ(b32.vision_patch, 32);
  EXPECT_EQ(b32.image_resolution, 224);
  EXPECT_EQ(b32.text_width, 512);
  EXPECT_EQ(b32.text_heads, 8);
  EXPECT_EQ(b32.context_length, 77);
  EXPECT_EQ(b32.embed_dim, 512);
  const ClipDims l14 = infer_dims(shapes_only(preset_dims("longclip-l-336")));
  EXPECT_EQ(l14.vision_width, 1024);
  EXPECT_EQ(l14.vision_heads, 16);
  EXPECT_EQ(l14.vision_layers, 24);
  EXPECT_EQ(l14.vision_patch, 14);
  EXPECT_EQ(l14.image_resolution, 336);
  EXPECT_EQ(l14.text_width, 768);
  EXPECT_EQ(l14.text_heads, 12);
  EXPECT_EQ(l14.context_length, 248);
  EXPECT_EQ(l14.embed_dim, 768);
  EXPECT_TRUE(l14.long_context);
}

TEST(ClipLayout, HuggingFaceRoundTripIsExact) {
  const StateDict openai = make_random_weights(preset_dims("micro"), 7);
  const StateDict hf = to_hf_layout(openai);
  EXPECT_EQ(detect_layout(hf), WeightsLayout::kHuggingFace);
  EXPECT_EQ(detect_layout(openai), WeightsLayout::kOpenAI);
  const StateDict back = to_openai_layout(hf, WeightsLayout::kHuggingFace);
  ASSERT_EQ(back.size(), openai.size());
  for (const auto& [name, t] : openai) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
}

TEST(ClipLayout, HuggingFaceNamesMatchTransformers) {
  // The micro fixture's model.safetensors was written with transformers' CLIPModel names.
  const StateDict real = read_safetensors(fixtures() / "models/micro/hf/model.safetensors");
  const StateDict mine = to_hf_layout(
      make_random_weights(infer_dims(to_openai_layout(real, WeightsLayout::kHuggingFace)), 1));
  ASSERT_EQ(real.size(), mine.size());
  for (const auto& [name, t] : real) {
    ASSERT_TRUE(mine.count(name)) << name;
    EXPECT_EQ(mine.at(name).sizes(), t.sizes()) << name;
  }
}

TEST(ClipLayout, IgnoresPositionIdsAndTorchScriptScalarsAndCastsToFloat) {
  StateDict hf = to_hf_layout(make_random_weights(preset_dims("micro"), 3));
  hf["text_model.embeddings.position_ids"] = torch::arange(77).view({1, 77});
  for (auto& [n, t] : hf) t = t.to(torch::kHalf);
  const StateDict a = to_openai_layout(hf, WeightsLayout::kHuggingFace);
  EXPECT_FALSE(a.count("position_ids"));
  for (const auto& [n, t] : a) EXPECT_EQ(t.scalar_type(), torch::kFloat) << n;

  StateDict jit = make_random_weights(preset_dims("micro"), 3);
  jit["input_resolution"] = torch::tensor(64, torch::kLong);
  jit["context_length"] = torch::tensor(77, torch::kLong);
  jit["vocab_size"] = torch::tensor(1024, torch::kLong);
  const StateDict b = to_openai_layout(jit, WeightsLayout::kOpenAI);
  EXPECT_FALSE(b.count("input_resolution"));
  EXPECT_NO_THROW(check_state_dict(b, infer_dims(b), "jit"));
}

TEST(ClipLayout, RejectsUnknownHuggingFaceTensorAndIncompleteQkv) {
  StateDict hf = to_hf_layout(make_random_weights(preset_dims("micro"), 3));
  StateDict extra = hf;
  extra["vision_model.something_else"] = torch::zeros({1});
  EXPECT_THROW(to_openai_layout(extra, WeightsLayout::kHuggingFace, "x"), ModelError);
  hf.erase("text_model.encoder.layers.1.self_attn.k_proj.bias");
  EXPECT_THROW(to_openai_layout(hf, WeightsLayout::kHuggingFace, "x"), ModelError);
}

TEST(ClipLayout, CheckStateDictReportsMissingAndUnexpected) {
  StateDict sd = make_random_weights(preset_dims("micro"), 3);
  const ClipDims d = infer_dims(sd);
  sd.erase("ln_final.bias");
  sd["bogus"] = torch::zeros({2});
  try {
    check_state_dict(sd, d, "file.pt");
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ln_final.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bogus"), std::string::npos) << msg;
    EXPECT_NE(msg.find("file.pt"), std::string::npos) << msg;
  }
}

TEST(ClipLayout, HuggingFaceConfigGivesHeadsActivationAndEos) {
  ClipDims d = preset_dims("micro");
  const std::string cfg = testing::read_file_bytes(fixtures() / "models/micro/hf/config.json");
  apply_hf_config(cfg, "config.json", d);
  EXPECT_EQ(d.activation, Activation::kQuickGelu);
  EXPECT_EQ(d.text_heads, 1);
  // eos 1023 is the largest id of the 1024-id vocabulary: the argmax rule, exactly.
  EXPECT_EQ(d.eos_token_id, -1);
  EXPECT_EQ(d.bos_token_id, 1022);

  auto j = nlohmann::json::parse(cfg);
  j["text_config"]["hidden_act"] = "gelu";
  j["vision_config"]["hidden_act"] = "gelu";
  j["text_config"]["eos_token_id"] = 1000;
  j["text_config"]["num_attention_heads"] = 4;
  ClipDims e = preset_dims("micro");
  apply_hf_config(j.dump(), "config.json", e);
  EXPECT_EQ(e.activation, Activation::kGelu);
  EXPECT_EQ(e.eos_token_id, 1000);
  EXPECT_EQ(e.text_heads, 4);

  j["text_config"]["hidden_size"] = 128;  // disagrees with the weights
  ClipDims f = preset_dims("micro");
  EXPECT_THROW(apply_hf_config(j.dump(), "config.json", f), ModelError);
  EXPECT_THROW(apply_hf_config("{not json", "config.json", f), ModelError);
}

TEST(ClipLayout, GeneratedConfigReadsBack) {
  const ClipDims d = preset_dims("tiny");
  ClipDims e = d;
  apply_hf_config(make_hf_config(d), "generated", e);
  EXPECT_EQ(e.text_heads, d.text_heads);
  EXPECT_EQ(e.vision_heads, d.vision_heads);
  EXPECT_EQ(e.eos_token_id, -1);
  EXPECT_EQ(e.activation, Activation::kQuickGelu);
}

TEST(RandomModel, IsDeterministicAndNotDegenerate) {
  const ClipDims d = preset_dims("micro");
  const StateDict a = make_random_weights(d, 11), b = make_random_weights(d, 11),
                  c = make_random_weights(d, 12);
  EXPECT_TRUE(torch::equal(a.at("visual.proj"), b.at("visual.proj")));
  EXPECT_FALSE(torch::equal(a.at("visual.proj"), c.at("visual.proj")));
  const auto& tok = a.at("token_embedding.weight");
  EXPECT_NEAR(tok.std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(tok.mean().item<double>(), 0.0, 0.002);
  EXPECT_NEAR(a.at("ln_final.weight").mean().item<double>(), 1.0, 0.05);
  EXPECT_THROW(preset_dims("vit-z"), std::invalid_argument);
}

}  // namespace
}  // namespace clipshard
