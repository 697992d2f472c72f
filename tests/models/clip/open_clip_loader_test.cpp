// open_clip configs (accepted keys, refusals by name, shape checks), the bare-state-dict rule,
// the architecture table, and sharded checkpoints (loading and every refusal).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/clip/model_loader.h"
#include "models/clip/open_clip_config.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const fs::path kOpenClip = testing::fixtures() / "models/openclip";

nlohmann::json gelu_config() {
  return nlohmann::json::parse(testing::read_file_bytes(kOpenClip / "gelu/open_clip_config.json"));
}

// A copy of the gelu/ model directory with `config` as its open_clip_config.json.
fs::path model_dir_with(const TempDir& tmp, const nlohmann::json& config) {
  const fs::path dir = tmp.path() / "model";
  fs::create_directories(dir);
  fs::copy_file(kOpenClip / "gelu/open_clip_model.safetensors",
                dir / "open_clip_model.safetensors");
  std::ofstream(dir / "open_clip_config.json") << config.dump(2);
  return dir;
}

std::string load_error(const ModelRequest& r) {
  try {
    StateDict sd;
    read_model_weights(r, sd);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

std::string load_error(const fs::path& path) {
  ModelRequest r;
  r.name_or_path = path.string();
  return load_error(r);
}

void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

TEST(OpenClipConfig, ParsesTheFixtureConfigs) {
  const auto c = parse_open_clip_config(gelu_config().dump(), "x.json");
  EXPECT_FALSE(c.quick_gelu);
  EXPECT_EQ(c.vision_width, 64);
  EXPECT_EQ(c.vision_head_width, 64);
  EXPECT_EQ(c.image_size, 32);
  EXPECT_EQ(c.text_width, 8);
  EXPECT_EQ(c.text_heads, 1);
  EXPECT_EQ(c.preprocess.image_size, 32);
  EXPECT_FLOAT_EQ(c.preprocess.mean[0], 0.48145466f);
  const auto q = parse_open_clip_config(
      testing::read_file_bytes(kOpenClip / "quickgelu/open_clip_config.json"), "q.json");
  EXPECT_TRUE(q.quick_gelu);
  EXPECT_EQ(q.image_size, 64);
}

TEST(OpenClipConfig, EveryUnsupportedSettingIsRefusedByName) {
  struct Case {
    std::string tower;  // "", "vision_cfg", "text_cfg", "preprocess_cfg"
    std::string key;
    nlohmann::json value;
  };
  const std::vector<Case> cases = {
      {"vision_cfg", "ls_init_value", 1e-5},
      {"text_cfg", "ls_init_value", 1e-5},
      {"vision_cfg", "attentional_pool", true},
      {"vision_cfg", "attn_pooler_queries", 256},
      {"vision_cfg", "attn_pooler_heads", 8},
      {"text_cfg", "hf_model_name", "roberta-base"},
      {"text_cfg", "hf_tokenizer_name", "roberta-base"},
      {"text_cfg", "hf_proj_type", "mlp"},
      {"", "init_logit_bias", -10},
      {"", "custom_text", true},
      {"", "multimodal_cfg", nlohmann::json::object()},
      {"vision_cfg", "pool_type", "avg"},
      {"text_cfg", "pool_type", "last"},
      {"vision_cfg", "no_ln_pre", true},
      {"vision_cfg", "final_ln_after_pool", true},
      {"text_cfg", "final_ln_after_pool", true},
      {"text_cfg", "no_causal_mask", true},
      {"text_cfg", "embed_cls", true},
      {"text_cfg", "proj_bias", true},
      {"vision_cfg", "timm_model_name", "convnext_base"},
      {"vision_cfg", "layers", {3, 4, 6, 3}},
      {"vision_cfg", "qk_norm", true},
      {"vision_cfg", "act_kwargs", {{"approximate", "tanh"}}},
      {"vision_cfg", "some_future_key", 1},
      {"preprocess_cfg", "resize_mode", "squash"},
      {"preprocess_cfg", "interpolation", "bilinear"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tower + "." + c.key);
    auto cfg = gelu_config();
    if (c.tower.empty())
      cfg["model_cfg"][c.key] = c.value;
    else if (c.tower == "preprocess_cfg")
      cfg["preprocess_cfg"][c.key] = c.value;
    else
      cfg["model_cfg"][c.tower][c.key] = c.value;
    TempDir tmp;
    const fs::path dir = model_dir_with(tmp, cfg);
    const std::string msg = load_error(dir);
    expect_contains(msg, "open_clip_config.json");
    expect_contains(msg, c.key);
  }
}

TEST(OpenClipConfig, NeutralValuesAndTrainingOnlyKeysAreAccepted) {
  auto cfg = gelu_config();
  cfg["model_cfg"]["vision_cfg"]["ls_init_value"] = nullptr;
  cfg["model_cfg"]["vision_cfg"]["patch_dropout"] = 0.5;
  cfg["model_cfg"]["vision_cfg"]["pool_type"] = "tok";
  cfg["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = nullptr;
  cfg["model_cfg"]["custom_text"] = false;
  cfg["model_cfg"]["init_logit_scale"] = 2.6592;
  TempDir tmp;
  EXPECT_EQ(load_error(model_dir_with(tmp, cfg)), "");
}

TEST(OpenClipConfig, ShapesContradictingTheConfigNameFileAndKey) {
  for (const auto& [tower, key, value] :
       std::vector<std::tuple<std::string, std::string, int>>{{"vision_cfg", "width", 128},
                                                              {"vision_cfg", "layers", 3},
                                                              {"vision_cfg", "image_size", 64},
                                                              {"text_cfg", "context_length", 64},
                                                              {"text_cfg", "width", 16},
                                                              {"", "embed_dim", 32}}) {
    SCOPED_TRACE(key);
    auto cfg = gelu_config();
    if (tower.empty())
      cfg["model_cfg"][key] = value;
    else
      cfg["model_cfg"][tower][key] = value;
    TempDir tmp;
    const std::string msg = load_error(model_dir_with(tmp, cfg));
    expect_contains(msg, "open_clip_config.json");
    expect_contains(msg, key);
    expect_contains(msg, "open_clip_model.safetensors");
  }
  auto cfg = gelu_config();
  cfg["model_cfg"]["vision_cfg"]["head_width"] = 48;  // does not divide 64
  TempDir tmp;
  expect_contains(load_error(model_dir_with(tmp, cfg)), "head_width");
}

TEST(OpenClipArchitecture, TableHoldsOpenClipsModels) {
  const auto names = open_clip_architecture_names();
  for (const std::string n :
       {"ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-B-16-quickgelu", "ViT-L-14",
        "ViT-L-14-quickgelu", "ViT-L-14-336", "ViT-L-14-336-quickgelu", "ViT-H-14",
        "ViT-H-14-quickgelu", "ViT-g-14", "ViT-bigG-14", "ViT-bigG-14-quickgelu"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  const auto h = resolve_open_clip_architecture("ViT-H-14");
  EXPECT_EQ(h.vision_width / h.vision_head_width, 16);
  EXPECT_EQ(h.text_layers, 24);
  EXPECT_FALSE(h.quick_gelu);
  const auto g = resolve_open_clip_architecture("ViT-g-14");
  EXPECT_EQ(static_cast<int64_t>(g.vision_width * g.vision_mlp_ratio), 6144);
  const auto big = resolve_open_clip_architecture("ViT-bigG-14-quickgelu");
  EXPECT_TRUE(big.quick_gelu);
  EXPECT_EQ(static_cast<int64_t>(big.vision_width * big.vision_mlp_ratio), 8192);
  try {
    resolve_open_clip_architecture("ViT-X-99");
    FAIL();
  } catch (const ModelError& e) {
    expect_contains(e.what(), "ViT-X-99");
    expect_contains(e.what(), "ViT-L-14-336");
  }
}

TEST(BareStateDict, OpenClipFilesAreNeverGuessed) {
  // A lone open_clip file, and a directory with the weights but no config.
  std::string msg = load_error(kOpenClip / "gelu/open_clip_pytorch_model.bin");
  expect_contains(msg, "open_clip_pytorch_model.bin");
  expect_contains(msg, "architecture");
  TempDir tmp;
  fs::copy_file(kOpenClip / "gelu/open_clip_model.safetensors",
                tmp.path() / "open_clip_model.safetensors");
  expect_contains(load_error(tmp.path()), "architecture");
  // Even renamed to .pt, a file whose name says open_clip is not taken as OpenAI's.
  fs::copy_file(kOpenClip / "gelu/open_clip_pytorch_model.bin", tmp.path() / "open_clip_vit.pt");
  expect_contains(load_error(tmp.path() / "open_clip_vit.pt"), "architecture");
}

TEST(BareStateDict, ArchitectureFromTheTableChecksTheShapes) {
  ModelRequest r;
  r.name_or_path = (kOpenClip / "gelu/open_clip_pytorch_model.bin").string();
  r.architecture = "ViT-B-32";
  const std::string msg = load_error(r);
  expect_contains(msg, "open_clip architecture ViT-B-32");
  expect_contains(msg, "open_clip_pytorch_model.bin");
}

TEST(BareStateDict, ArchitectureIsRefusedForFilesThatCarryTheirOwn) {
  ModelRequest r;
  r.name_or_path = (testing::fixtures() / "models/micro/openai_jit.pt").string();
  r.architecture = "ViT-B-32";
  expect_contains(load_error(r), "remove the architecture");
  r.name_or_path = (kOpenClip / "gelu").string();
  expect_contains(load_error(r), "remove the architecture");
  r.name_or_path = (testing::fixtures() / "models/micro/hf").string();
  expect_contains(load_error(r), "remove the architecture");
}

TEST(BareStateDict, OpenAIStateDictPtStaysOpenAI) {
  ModelRequest r;
  r.name_or_path = (testing::fixtures() / "models/micro/openai_state_dict.pt").string();
  StateDict sd;
  const LoadedModel plain = read_model_weights(r, sd);
  EXPECT_EQ(plain.format, ModelFormat::kOpenAIStateDict);
  EXPECT_FALSE(plain.open_clip);
}

// ---- sharded checkpoints ----

std::pair<at::Tensor, at::Tensor> features(LoadedModel& m) {
  torch::manual_seed(5);
  const int64_t r = m.dims.image_resolution;
  const auto images = torch::randn({2, 3, r, r});
  const int64_t v = m.dims.vocab_size;
  auto ids = torch::zeros({2, 7}, torch::kLong);
  ids[0] = torch::tensor({v - 2, 320 % v, 1125 % v, 539 % v, v - 1, int64_t{0}, int64_t{0}});
  ids[1] =
      torch::tensor({v - 2, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{10}, int64_t{11}, v - 1});
  return {m.model->encode_image(images), m.model->encode_text(ids)};
}

LoadedModel load_cpu(const fs::path& path) {
  ModelRequest r;
  r.name_or_path = path.string();
  r.device = "cpu";
  return load_model(r);
}

TEST(Sharded, LoadsExactlyLikeTheSingleFile) {
  for (const auto& [sharded, single] : std::vector<std::pair<std::string, std::string>>{
           {"models/micro/hf_sharded", "models/micro/hf"},
           {"models/micro/hf_sharded_bin", "models/micro/hf"}}) {
    SCOPED_TRACE(sharded);
    LoadedModel a = load_cpu(testing::fixtures() / sharded);
    LoadedModel b = load_cpu(testing::fixtures() / single);
    EXPECT_EQ(a.format, ModelFormat::kHuggingFaceDir);
    EXPECT_NE(a.weights_file.filename().string().find(".index.json"), std::string::npos);
    EXPECT_EQ(a.fingerprint, b.fingerprint);
    const auto [ai, at] = features(a);
    const auto [bi, bt] = features(b);
    EXPECT_TRUE(torch::equal(ai, bi));
    EXPECT_TRUE(torch::equal(at, bt));
  }
}

// A copy of the sharded tiny model whose index is `edit`ed.
fs::path sharded_copy(const TempDir& tmp,
                      const std::function<void(nlohmann::json&, const fs::path&)>& edit) {
  const fs::path dir = tmp.path() / "sharded";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(testing::fixtures() / "models/micro/hf_sharded_bin"))
    fs::copy_file(e.path(), dir / e.path().filename());
  auto index =
      nlohmann::json::parse(testing::read_file_bytes(dir / "pytorch_model.bin.index.json"));
  edit(index, dir);
  std::ofstream(dir / "pytorch_model.bin.index.json") << index.dump(2);
  return dir;
}

TEST(Sharded, BadIndexesAreClearErrorsNamingFileAndKey) {
  const std::string shard1 = "pytorch_model-00001-of-00002.bin";
  const std::string shard2 = "pytorch_model-00002-of-00002.bin";
  {
    TempDir tmp;  // a missing shard file
    const auto dir =
        sharded_copy(tmp, [&](nlohmann::json&, const fs::path& d) { fs::remove(d / shard2); });
    const std::string msg = load_error(dir);
    expect_contains(msg, shard2);
    expect_contains(msg, "does not exist");
  }
  {
    TempDir tmp;  // a tensor in the index missing from its shard
    const auto dir = sharded_copy(tmp, [&](nlohmann::json& index, const fs::path&) {
      index["weight_map"]["text_model.extra.weight"] = shard1;
    });
    const std::string msg = load_error(dir);
    expect_contains(msg, "text_model.extra.weight");
    expect_contains(msg, shard1);
  }
  {
    TempDir tmp;  // a tensor present in two shards (the index assigns it to shard 1)
    const auto dir = sharded_copy(tmp, [&](nlohmann::json&, const fs::path& d) {
      StateDict one = read_checkpoint(d / shard1), two = read_checkpoint(d / shard2);
      StateDict copy;
      for (auto& [n, t] : two) copy[n] = t.clone();
      copy["logit_scale"] = one.at("logit_scale").clone();
      // A new file renamed over the old: the shards read above map the old one.
      write_torch_zip(d / "new.bin", copy);
      fs::rename(d / "new.bin", d / shard2);
    });
    const std::string msg = load_error(dir);
    expect_contains(msg, "logit_scale");
    expect_contains(msg, "two shards");
  }
  {
    TempDir tmp;  // a tensor listed twice in the index (JSON duplicate key)
    const auto dir = sharded_copy(tmp, [](nlohmann::json&, const fs::path&) {});
    std::string text = testing::read_file_bytes(dir / "pytorch_model.bin.index.json");
    const auto at = text.find("\"weight_map\": {") + 15;
    text.insert(at, "\n    \"logit_scale\": \"" + shard2 + "\",");
    testing::write_file_bytes(dir / "pytorch_model.bin.index.json", text);
    const std::string msg = load_error(dir);
    expect_contains(msg, "logit_scale");
    expect_contains(msg, "twice");
    expect_contains(msg, "pytorch_model.bin.index.json");
  }
  {
    TempDir tmp;  // mismatched dtypes across shards: shard 2 rewritten in another dtype
    const auto dir = sharded_copy(tmp, [&](nlohmann::json&, const fs::path& d) {
      StateDict part = read_checkpoint(d / shard2);
      StateDict other;
      for (auto& [n, t] : part) {
        const auto to = t.scalar_type() == at::kHalf ? at::kFloat : at::kHalf;
        other[n] = at::isFloatingType(t.scalar_type()) ? t.to(to) : t.clone();
      }
      write_torch_zip(d / "new.bin", other);
      fs::rename(d / "new.bin", d / shard2);
    });
    const std::string msg = load_error(dir);
    expect_contains(msg, shard2);
    expect_contains(msg, "one dtype");
  }
  {
    TempDir tmp;  // no weight_map
    const auto dir = sharded_copy(
        tmp, [](nlohmann::json& index, const fs::path&) { index.erase("weight_map"); });
    expect_contains(load_error(dir), "weight_map");
  }
}

}  // namespace
}  // namespace clipshard
