#include "models/clip/open_clip_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

namespace clipshard {
namespace {

using nlohmann::json;

// open_clip v3.3.0 src/open_clip/model_configs/<name>.json, verbatim (whitespace removed).
const std::map<std::string, std::string>& architecture_table() {
  static const std::map<std::string, std::string> kTable =
      {
          {"ViT-B-32",
           R"({"embed_dim":512,"vision_cfg":{"image_size":224,"layers":12,"width":768,"patch_size":32},"text_cfg":{"context_length":77,"vocab_size":49408,"width":512,"heads":8,"layers":12}})"},
          {"ViT-B-32-quickgelu",
           R"({"embed_dim":512,"quick_gelu":true,"vision_cfg":{"image_size":224,"layers":12,"width":768,"patch_size":32},"text_cfg":{"context_length":77,"vocab_size":49408,"width":512,"heads":8,"layers":12}})"},
          {"ViT-B-16",
           R"({"embed_dim":512,"vision_cfg":{"image_size":224,"layers":12,"width":768,"patch_size":16},"text_cfg":{"context_length":77,"vocab_size":49408,"width":512,"heads":8,"layers":12}})"},
          {"ViT-B-16-quickgelu",
           R"({"embed_dim":512,"quick_gelu":true,"vision_cfg":{"image_size":224,"layers":12,"width":768,"patch_size":16},"text_cfg":{"context_length":77,"vocab_size":49408,"width":512,"heads":8,"layers":12}})"},
          {"ViT-L-14",
           R"({"embed_dim":768,"vision_cfg":{"image_size":224,"layers":24,"width":1024,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":768,"heads":12,"layers":12}})"},
          {"ViT-L-14-quickgelu",
           R"({"embed_dim":768,"quick_gelu":true,"vision_cfg":{"image_size":224,"layers":24,"width":1024,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":768,"heads":12,"layers":12}})"},
          {"ViT-L-14-336",
           R"({"embed_dim":768,"vision_cfg":{"image_size":336,"layers":24,"width":1024,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":768,"heads":12,"layers":12}})"},
          {"ViT-L-14-336-quickgelu",
           R"({"embed_dim":768,"quick_gelu":true,"vision_cfg":{"image_size":336,"layers":24,"width":1024,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":768,"heads":12,"layers":12}})"},
          {"ViT-H-14",
           R"({"embed_dim":1024,"vision_cfg":{"image_size":224,"layers":32,"width":1280,"head_width":80,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":1024,"heads":16,"layers":24}})"},
          {"ViT-H-14-quickgelu",
           R"({"embed_dim":1024,"quick_gelu":true,"vision_cfg":{"image_size":224,"layers":32,"width":1280,"head_width":80,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":1024,"heads":16,"layers":24}})"},
          {"ViT-g-14",
           R"({"embed_dim":1024,"vision_cfg":{"image_size":224,"layers":40,"width":1408,"head_width":88,"mlp_ratio":4.3637,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":1024,"heads":16,"layers":24}})"},
          {"ViT-bigG-14",
           R"({"embed_dim":1280,"vision_cfg":{"image_size":224,"layers":48,"width":1664,"head_width":104,"mlp_ratio":4.9231,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":1280,"heads":20,"layers":32}})"},
          {"ViT-bigG-14-quickgelu", R"({"embed_dim":1280,"quick_gelu":true,"vision_cfg":{"image_size":224,"layers":48,"width":1664,"head_width":104,"mlp_ratio":4.9231,"patch_size":14},"text_cfg":{"context_length":77,"vocab_size":49408,"width":1280,"heads":20,"layers":32}})"},
      };
  return kTable;
}

// How a config key is treated. kNeutral: accepted only with the value that leaves open_clip's
// forward equal to the OpenAI-layout one (`neutral`, or null/{} for kwargs); anything else is
// refused by name. kIgnored: training-only settings that do not change an eval forward.
enum class KeyRule { kHandled, kNeutral, kIgnored, kRefused };

struct KeySpec {
  KeyRule rule;
  json neutral = nullptr;  // kNeutral: the one accepted value (null also accepted for kwargs)
};

const std::map<std::string, KeySpec>& model_keys() {
  static const std::map<std::string, KeySpec> kKeys = {
      {"embed_dim", {KeyRule::kHandled}},
      {"quick_gelu", {KeyRule::kHandled}},
      {"vision_cfg", {KeyRule::kHandled}},
      {"text_cfg", {KeyRule::kHandled}},
      {"custom_text", {KeyRule::kNeutral, false}},  // CustomTextCLIP: "text." names, other tower
      {"init_logit_scale", {KeyRule::kIgnored}},    // the loaded logit_scale replaces it
      {"init_logit_bias", {KeyRule::kNeutral, nullptr}},  // SigLIP: a logit bias
      {"nonscalar_logit_scale", {KeyRule::kNeutral, false}},
      {"output_dict", {KeyRule::kIgnored}},     // return type only
      {"multimodal_cfg", {KeyRule::kRefused}},  // CoCa
      {"cast_dtype", {KeyRule::kNeutral, nullptr}},
  };
  return kKeys;
}

// Keys of open_clip's transformer blocks that both towers' configs take, each accepted only with
// the value that leaves the block as the OpenAI-layout one computes it.
std::map<std::string, KeySpec> with_block_keys(std::map<std::string, KeySpec> keys) {
  keys.insert({
      {"output_tokens", {KeyRule::kIgnored}},  // return type only
      {"act_kwargs", {KeyRule::kNeutral, json::object()}},
      {"norm_kwargs", {KeyRule::kNeutral, json::object()}},
      {"block_type", {KeyRule::kNeutral, "default"}},
      {"qk_norm", {KeyRule::kNeutral, false}},
      {"scaled_cosine_attn", {KeyRule::kNeutral, false}},
      {"scale_heads", {KeyRule::kNeutral, false}},
      {"scale_attn_inner", {KeyRule::kNeutral, false}},
      {"scale_attn", {KeyRule::kNeutral, false}},
      {"scale_fc", {KeyRule::kNeutral, false}},
  });
  return keys;
}

const std::map<std::string, KeySpec>& vision_keys() {
  static const std::map<std::string, KeySpec> kKeys = with_block_keys({
      {"layers", {KeyRule::kHandled}},
      {"width", {KeyRule::kHandled}},
      {"head_width", {KeyRule::kHandled}},
      {"mlp_ratio", {KeyRule::kHandled}},
      {"patch_size", {KeyRule::kHandled}},
      {"image_size", {KeyRule::kHandled}},
      {"ls_init_value", {KeyRule::kNeutral, nullptr}},  // layer scale (ls_1/ls_2.gamma)
      {"patch_dropout", {KeyRule::kIgnored}},           // training only
      {"attentional_pool", {KeyRule::kNeutral, false}},
      {"attn_pooler_queries", {KeyRule::kRefused}},
      {"attn_pooler_heads", {KeyRule::kRefused}},
      {"no_ln_pre", {KeyRule::kNeutral, false}},
      {"pos_embed_type", {KeyRule::kNeutral, "learnable"}},
      {"final_ln_after_pool", {KeyRule::kNeutral, false}},
      {"pool_type", {KeyRule::kNeutral, "tok"}},
      {"timm_model_name", {KeyRule::kNeutral, nullptr}},
      // Only read when timm_model_name is set (refused above).
      {"timm_model_pretrained", {KeyRule::kIgnored}},
      {"timm_pool", {KeyRule::kIgnored}},
      {"timm_proj", {KeyRule::kIgnored}},
      {"timm_proj_bias", {KeyRule::kIgnored}},
      {"timm_drop", {KeyRule::kIgnored}},
      {"timm_drop_path", {KeyRule::kIgnored}},
  });
  return kKeys;
}

const std::map<std::string, KeySpec>& text_keys() {
  static const std::map<std::string, KeySpec> kKeys = with_block_keys({
      {"context_length", {KeyRule::kHandled}},
      {"vocab_size", {KeyRule::kHandled}},
      {"width", {KeyRule::kHandled}},
      {"heads", {KeyRule::kHandled}},
      {"layers", {KeyRule::kHandled}},
      {"mlp_ratio", {KeyRule::kHandled}},
      {"hf_tokenizer_name", {KeyRule::kNeutral, nullptr}},
      {"tokenizer_mode", {KeyRule::kNeutral, nullptr}},
      {"tokenizer_kwargs", {KeyRule::kNeutral, json::object()}},
      {"ls_init_value", {KeyRule::kNeutral, nullptr}},
      {"embed_cls", {KeyRule::kNeutral, false}},
      // Padding never reaches a pooled feature (causal tower, pooled at the end token); the
      // tokenizer pads with 0 as open_clip's does.
      {"pad_id", {KeyRule::kNeutral, 0}},
      {"eos_id", {KeyRule::kIgnored}},  // only read for pool_type "eos" (refused)
      {"no_causal_mask", {KeyRule::kNeutral, false}},
      {"final_ln_after_pool", {KeyRule::kNeutral, false}},
      {"pool_type", {KeyRule::kNeutral, "argmax"}},
      {"proj_bias", {KeyRule::kNeutral, false}},
      {"proj_type", {KeyRule::kNeutral, "linear"}},
      {"hf_model_name", {KeyRule::kRefused}},
      {"hf_model_pretrained", {KeyRule::kRefused}},
      {"hf_proj_type", {KeyRule::kRefused}},
      {"hf_pooler_type", {KeyRule::kRefused}},
  });
  return kKeys;
}

const std::map<std::string, KeySpec>& preprocess_keys() {
  static const std::map<std::string, KeySpec> kKeys = {
      {"mean", {KeyRule::kHandled}},
      {"std", {KeyRule::kHandled}},
      {"size", {KeyRule::kHandled}},
      {"interpolation", {KeyRule::kNeutral, "bicubic"}},
      {"resize_mode", {KeyRule::kNeutral, "shortest"}},
      {"mode", {KeyRule::kNeutral, "RGB"}},
      {"fill_color", {KeyRule::kIgnored}},  // only used by resize_mode "longest" (refused)
  };
  return kKeys;
}

[[noreturn]] void refuse(const std::string& source, const std::string& key, const json& value,
                         const std::string& why) {
  throw ModelError(source + ": " + key + " = " + value.dump() + " is not supported (" + why +
                   "); clipshard runs only open_clip models whose forward equals OpenAI CLIP's "
                   "ViT (no approximate run)");
}

// Applies the key rules to an object; returns nothing, throws for refused/unknown keys.
void check_keys(const json& obj, const std::map<std::string, KeySpec>& rules,
                const std::string& source, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string key = where + "." + it.key();
    auto rule = rules.find(it.key());
    if (rule == rules.end())
      refuse(source, key, it.value(), "unknown key; it may change the model");
    const json& v = it.value();
    switch (rule->second.rule) {
      case KeyRule::kHandled:
      case KeyRule::kIgnored:
        break;
      case KeyRule::kRefused:
        refuse(source, key, v, "this tower or pooling variant is not implemented");
      case KeyRule::kNeutral: {
        const json& neutral = rule->second.neutral;
        const bool empty_kwargs = neutral.is_object() && (v.is_null() || v == json::object());
        const bool block_default = it.key() == "block_type" && v.is_null();
        if (!(v == neutral || empty_kwargs || block_default))
          refuse(source, key, v, "only " + neutral.dump() + " is supported");
        break;
      }
    }
  }
}

int64_t get_int(const json& obj, const char* key, int64_t fallback, const std::string& source,
                const std::string& where) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 1)
    throw ModelError(source + ": " + where + "." + key + " must be a positive integer, got " +
                     v.dump());
  return v.get<int64_t>();
}

double get_ratio(const json& obj, const char* key, const std::string& source,
                 const std::string& where) {
  if (!obj.contains(key)) return 4.0;
  const json& v = obj[key];
  if (!v.is_number() || !(v.get<double>() > 0))
    throw ModelError(source + ": " + where + "." + key + " must be a positive number, got " +
                     v.dump());
  return v.get<double>();
}

std::array<float, 3> get_triple(const json& v, const std::string& source, const std::string& key) {
  std::array<float, 3> out{};
  if (v.is_number()) {
    out.fill(v.get<float>());
    return out;
  }
  if (!v.is_array() || v.size() != 3)
    throw ModelError(source + ": " + key + " must be 3 numbers, got " + v.dump());
  for (size_t i = 0; i < 3; ++i) {
    if (!v[i].is_number()) throw ModelError(source + ": " + key + " must be numbers");
    out[i] = v[i].get<float>();
  }
  return out;
}

void parse_model_cfg(const json& m, OpenClipConfig& c, const std::string& where) {
  const std::string& src = c.source;
  if (!m.is_object()) throw ModelError(src + ": " + where + " must be an object");
  check_keys(m, model_keys(), src, where);
  c.embed_dim = get_int(m, "embed_dim", c.embed_dim, src, where);
  if (m.contains("quick_gelu")) {
    if (!m["quick_gelu"].is_boolean())
      throw ModelError(src + ": " + where + ".quick_gelu must be true or false");
    c.quick_gelu = m["quick_gelu"].get<bool>();
  }
  const json v = m.value("vision_cfg", json::object());
  const std::string vw = where + ".vision_cfg";
  if (!v.is_object()) throw ModelError(src + ": " + vw + " must be an object");
  check_keys(v, vision_keys(), src, vw);
  if (v.contains("layers") && v["layers"].is_array())
    refuse(src, vw + ".layers", v["layers"], "a ResNet image tower");
  c.vision_layers = get_int(v, "layers", c.vision_layers, src, vw);
  c.vision_width = get_int(v, "width", c.vision_width, src, vw);
  c.vision_head_width = get_int(v, "head_width", c.vision_head_width, src, vw);
  c.vision_patch = get_int(v, "patch_size", c.vision_patch, src, vw);
  c.vision_mlp_ratio = get_ratio(v, "mlp_ratio", src, vw);
  if (v.contains("image_size") && v["image_size"].is_array()) {
    const json& s = v["image_size"];
    if (s.size() != 2 || s[0] != s[1] || !s[0].is_number_integer())
      refuse(src, vw + ".image_size", s, "only square images");
    c.image_size = s[0].get<int64_t>();
  } else {
    c.image_size = get_int(v, "image_size", c.image_size, src, vw);
  }
  const json t = m.value("text_cfg", json::object());
  const std::string tw = where + ".text_cfg";
  if (!t.is_object()) throw ModelError(src + ": " + tw + " must be an object");
  check_keys(t, text_keys(), src, tw);
  c.context_length = get_int(t, "context_length", c.context_length, src, tw);
  c.vocab_size = get_int(t, "vocab_size", c.vocab_size, src, tw);
  c.text_width = get_int(t, "width", c.text_width, src, tw);
  c.text_heads = get_int(t, "heads", c.text_heads, src, tw);
  c.text_layers = get_int(t, "layers", c.text_layers, src, tw);
  c.text_mlp_ratio = get_ratio(t, "mlp_ratio", src, tw);
  c.preprocess.image_size = c.image_size;
}

void parse_preprocess_cfg(const json& p, OpenClipConfig& c) {
  const std::string& src = c.source;
  if (!p.is_object()) throw ModelError(src + ": preprocess_cfg must be an object");
  check_keys(p, preprocess_keys(), src, "preprocess_cfg");
  if (p.contains("mean")) c.preprocess.mean = get_triple(p["mean"], src, "preprocess_cfg.mean");
  if (p.contains("std")) c.preprocess.std = get_triple(p["std"], src, "preprocess_cfg.std");
  for (float s : c.preprocess.std)
    if (!(s > 0)) throw ModelError(src + ": preprocess_cfg.std must be positive");
  if (p.contains("size")) {
    const json& s = p["size"];
    const bool same = (s.is_number_integer() && s.get<int64_t>() == c.image_size) ||
                      (s.is_array() && s.size() == 2 && s[0] == c.image_size && s[1] == s[0]);
    if (!same)
      refuse(src, "preprocess_cfg.size", s,
             "a preprocessing size other than model_cfg.vision_cfg.image_size = " +
                 std::to_string(c.image_size));
  }
}

}  // namespace

OpenClipConfig parse_open_clip_config(const std::string& json_text, const std::string& source) {
  OpenClipConfig c;
  c.source = source;
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const std::exception& e) {
    throw ModelError(source + " is not valid JSON: " + e.what());
  }
  if (!doc.is_object()) throw ModelError(source + " is not a JSON object");
  try {
    if (doc.contains("model_cfg")) {
      for (auto it = doc.begin(); it != doc.end(); ++it)
        if (it.key() != "model_cfg" && it.key() != "preprocess_cfg")
          refuse(source, it.key(), it.value(), "unknown key next to model_cfg");
      parse_model_cfg(doc["model_cfg"], c, "model_cfg");
      if (doc.contains("preprocess_cfg")) parse_preprocess_cfg(doc["preprocess_cfg"], c);
    } else if (doc.contains("vision_cfg") || doc.contains("text_cfg")) {
      parse_model_cfg(doc, c, "model_cfg");
    } else {
      throw ModelError(source +
                       " is not an open_clip config: it has neither \"model_cfg\" "
                       "(open_clip_config.json) nor \"vision_cfg\"/\"text_cfg\" (model_configs)");
    }
  } catch (const json::exception& e) {
    throw ModelError(source + ": a config value has the wrong type: " + e.what());
  }
  return c;
}

std::vector<std::string> open_clip_architecture_names() {
  std::vector<std::string> names;
  for (const auto& [name, cfg] : architecture_table()) names.push_back(name);
  return names;
}

OpenClipConfig resolve_open_clip_architecture(const std::string& architecture) {
  const auto& table = architecture_table();
  if (auto it = table.find(architecture); it != table.end())
    return parse_open_clip_config(it->second, "open_clip architecture " + architecture);
  std::error_code ec;
  if (std::filesystem::is_regular_file(architecture, ec)) {
    std::ifstream in(architecture, std::ios::binary);
    if (!in) throw ModelError("cannot read open_clip config " + architecture);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_open_clip_config(text, architecture);
  }
  std::string names;
  for (const auto& [name, cfg] : table) names += (names.empty() ? "" : ", ") + name;
  throw ModelError("architecture '" + architecture + "' is neither a known open_clip model (" +
                   names + ") nor an existing open_clip config file");
}

void apply_open_clip_config(const OpenClipConfig& c, const std::string& weights_source,
                            ClipDims& d) {
  auto check = [&](const std::string& key, int64_t stated, int64_t actual,
                   const std::string& tensor) {
    if (stated != actual)
      throw ModelError(c.source + ": " + key + " = " + std::to_string(stated) + " but " + tensor +
                       " in " + weights_source + " says " + std::to_string(actual) +
                       "; the config and the weights do not belong together");
  };
  if (d.long_context)
    throw ModelError(weights_source + " holds positional_embedding_res (LongCLIP), but " +
                     c.source + " describes an open_clip CLIP model");
  check("model_cfg.embed_dim", c.embed_dim, d.embed_dim, "visual.proj");
  check("model_cfg.vision_cfg.width", c.vision_width, d.vision_width, "visual.conv1.weight");
  check("model_cfg.vision_cfg.layers", c.vision_layers, d.vision_layers,
        "visual.transformer.resblocks.*");
  check("model_cfg.vision_cfg.patch_size", c.vision_patch, d.vision_patch, "visual.conv1.weight");
  check("model_cfg.vision_cfg.image_size", c.image_size, d.image_resolution,
        "visual.positional_embedding");
  // open_clip: mlp_width = int(width * mlp_ratio).
  check("model_cfg.vision_cfg.mlp_ratio", static_cast<int64_t>(c.vision_width * c.vision_mlp_ratio),
        d.vision_mlp, "visual.transformer.resblocks.0.mlp.c_fc.weight (rows)");
  check("model_cfg.text_cfg.width", c.text_width, d.text_width, "ln_final.weight");
  check("model_cfg.text_cfg.layers", c.text_layers, d.text_layers, "transformer.resblocks.*");
  check("model_cfg.text_cfg.context_length", c.context_length, d.context_length,
        "positional_embedding");
  check("model_cfg.text_cfg.vocab_size", c.vocab_size, d.vocab_size, "token_embedding.weight");
  check("model_cfg.text_cfg.mlp_ratio", static_cast<int64_t>(c.text_width * c.text_mlp_ratio),
        d.text_mlp, "transformer.resblocks.0.mlp.c_fc.weight (rows)");
  if (c.vision_width % c.vision_head_width != 0)
    throw ModelError(c.source +
                     ": model_cfg.vision_cfg.head_width = " + std::to_string(c.vision_head_width) +
                     " does not divide width " + std::to_string(c.vision_width));
  if (c.text_width % c.text_heads != 0)
    throw ModelError(c.source + ": model_cfg.text_cfg.heads = " + std::to_string(c.text_heads) +
                     " does not divide width " + std::to_string(c.text_width));
  d.vision_heads = c.vision_width / c.vision_head_width;
  d.text_heads = c.text_heads;
  d.activation = c.quick_gelu ? Activation::kQuickGelu : Activation::kGelu;
  d.eos_token_id = -1;  // open_clip pools text at argmax(ids) (pool_type "argmax")
  d.layer_norm_eps = 1e-5;
}

}  // namespace clipshard
