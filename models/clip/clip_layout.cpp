#include "models/clip/clip_layout.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "models/weights/host_memory.h"

namespace clipshard {
namespace {

using Shape = std::vector<int64_t>;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string in(const std::string& source) { return source.empty() ? "" : " in " + source; }

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

// Block-internal names: OpenAI suffix <-> Hugging Face suffix (q/k/v handled separately).
const std::vector<std::pair<std::string, std::string>>& block_renames() {
  static const std::vector<std::pair<std::string, std::string>> kRenames = {
      {"attn.out_proj.weight", "self_attn.out_proj.weight"},
      {"attn.out_proj.bias", "self_attn.out_proj.bias"},
      {"ln_1.weight", "layer_norm1.weight"},
      {"ln_1.bias", "layer_norm1.bias"},
      {"ln_2.weight", "layer_norm2.weight"},
      {"ln_2.bias", "layer_norm2.bias"},
      {"mlp.c_fc.weight", "mlp.fc1.weight"},
      {"mlp.c_fc.bias", "mlp.fc1.bias"},
      {"mlp.c_proj.weight", "mlp.fc2.weight"},
      {"mlp.c_proj.bias", "mlp.fc2.bias"},
  };
  return kRenames;
}

// Top-level names that map one to one (transposed ones are handled separately).
const std::vector<std::pair<std::string, std::string>>& plain_renames() {
  static const std::vector<std::pair<std::string, std::string>> kRenames = {
      {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
      {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
      {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
      {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},
      {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
      {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
      {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
      {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
      {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
      {"ln_final.weight", "text_model.final_layer_norm.weight"},
      {"ln_final.bias", "text_model.final_layer_norm.bias"},
      {"logit_scale", "logit_scale"},
  };
  return kRenames;
}

const std::vector<std::pair<std::string, std::string>>& transposed_renames() {
  static const std::vector<std::pair<std::string, std::string>> kRenames = {
      {"visual.proj", "visual_projection.weight"},
      {"text_projection", "text_projection.weight"},
  };
  return kRenames;
}

// Tower prefixes: OpenAI block prefix <-> Hugging Face layer prefix.
const std::vector<std::pair<std::string, std::string>>& tower_prefixes() {
  static const std::vector<std::pair<std::string, std::string>> kPrefixes = {
      {"visual.transformer.resblocks.", "vision_model.encoder.layers."},
      {"transformer.resblocks.", "text_model.encoder.layers."},
  };
  return kPrefixes;
}

// Number of distinct block indices under `prefix` ("...resblocks.").
int64_t count_blocks(const StateDict& sd, const std::string& prefix) {
  std::set<int64_t> ids;
  for (const auto& [name, t] : sd) {
    if (!starts_with(name, prefix)) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0) continue;
    const std::string num = rest.substr(0, dot);
    if (!std::all_of(num.begin(), num.end(), ::isdigit)) continue;
    ids.insert(std::stoll(num));
  }
  return static_cast<int64_t>(ids.size());
}

const at::Tensor& need(const StateDict& sd, const std::string& name, int64_t dim,
                       const std::string& source) {
  auto it = sd.find(name);
  if (it == sd.end())
    throw ModelError("missing tensor '" + name + "'" + in(source) +
                     ": not a CLIP/LongCLIP checkpoint in OpenAI or Hugging Face layout");
  if (it->second.dim() != dim)
    throw ModelError("tensor '" + name + "'" + in(source) + " has shape " +
                     shape_str(it->second.sizes()) + ", expected " + std::to_string(dim) +
                     " dimensions");
  return it->second;
}

int64_t default_heads(int64_t width) { return std::max<int64_t>(1, width / 64); }

}  // namespace

WeightsLayout detect_layout(const StateDict& tensors) {
  for (const auto& [name, t] : tensors)
    if (starts_with(name, "vision_model.") || starts_with(name, "text_model.") ||
        starts_with(name, "visual_projection."))
      return WeightsLayout::kHuggingFace;
  return WeightsLayout::kOpenAI;
}

StateDict to_openai_layout(const StateDict& tensors, WeightsLayout layout,
                           const std::string& source) {
  // A DistributedDataParallel checkpoint prefixes every name with "module.".
  StateDict input;
  const bool ddp = !tensors.empty() && std::all_of(tensors.begin(), tensors.end(), [](auto& kv) {
    return starts_with(kv.first, "module.");
  });
  for (const auto& [name, t] : tensors) input[ddp ? name.substr(7) : name] = t;

  StateDict out;
  if (layout == WeightsLayout::kOpenAI) {
    for (const auto& [name, t] : input) {
      // TorchScript archives carry three int64 scalars that build_model() deletes.
      if ((name == "input_resolution" || name == "context_length" || name == "vocab_size") &&
          !at::isFloatingType(t.scalar_type()))
        continue;
      if (!at::isFloatingType(t.scalar_type()))
        throw ModelError("tensor '" + name + "'" + in(source) + " has non-floating dtype " +
                         std::string(c10::toString(t.scalar_type())));
      out[name] = host_contiguous_float(t);
    }
    return out;
  }

  std::map<std::string, std::string> plain;  // hf -> openai
  for (const auto& [o, h] : plain_renames()) plain[h] = o;
  std::map<std::string, std::string> transposed;
  for (const auto& [o, h] : transposed_renames()) transposed[h] = o;
  std::map<std::string, std::string> block;
  for (const auto& [o, h] : block_renames()) block[h] = o;

  // (openai block prefix, "weight"/"bias") -> q, k, v
  std::map<std::pair<std::string, std::string>, std::array<at::Tensor, 3>> qkv;
  for (const auto& [name, t] : input) {
    if (name.size() >= 12 && name.compare(name.size() - 12, 12, "position_ids") == 0) continue;
    if (auto it = plain.find(name); it != plain.end()) {
      out[it->second] = host_contiguous_float(t);
      continue;
    }
    if (auto it = transposed.find(name); it != transposed.end()) {
      out[it->second] = host_contiguous_float(t.t());
      continue;
    }
    bool mapped = false;
    for (const auto& [oprefix, hprefix] : tower_prefixes()) {
      if (!starts_with(name, hprefix)) continue;
      const std::string rest = name.substr(hprefix.size());
      const auto dot = rest.find('.');
      if (dot == std::string::npos) break;
      const std::string index = rest.substr(0, dot);
      const std::string suffix = rest.substr(dot + 1);
      const std::string bprefix = oprefix + index + ".";
      if (auto it = block.find(suffix); it != block.end()) {
        out[bprefix + it->second] = host_contiguous_float(t);
        mapped = true;
      } else {
        static const std::regex kQkv(R"(self_attn\.([qkv])_proj\.(weight|bias))");
        std::smatch m;
        if (std::regex_match(suffix, m, kQkv)) {
          const int slot = m[1] == "q" ? 0 : (m[1] == "k" ? 1 : 2);
          qkv[{bprefix, m[2]}][slot] = host_contiguous_float(t);
          mapped = true;
        }
      }
      break;
    }
    if (!mapped)
      throw ModelError("unexpected tensor '" + name + "'" + in(source) +
                       " in a Hugging Face CLIP checkpoint (not a CLIPModel?)");
  }
  for (const auto& [key, parts] : qkv) {
    for (const auto& p : parts)
      if (!p.defined())
        throw ModelError("incomplete q/k/v projection " + key.second + " for block '" + key.first +
                         "'" + in(source));
    for (const auto& p : parts)
      if (p.dim() < 1 || p.sizes().slice(1) != parts[0].sizes().slice(1))
        throw ModelError("q/k/v projection " + key.second + " for block '" + key.first + "'" +
                         in(source) + " has tensors of different shapes");
    auto sizes = parts[0].sizes().vec();
    sizes[0] = parts[0].size(0) + parts[1].size(0) + parts[2].size(0);
    at::Tensor joined = host_empty(sizes, at::kFloat);
    at::cat_out(joined, {parts[0], parts[1], parts[2]}, 0);
    out[key.first + "attn.in_proj_" + key.second] = joined;
  }
  return out;
}

StateDict to_hf_layout(const StateDict& openai) {
  if (openai.count("positional_embedding_res"))
    throw ModelError(
        "LongCLIP weights have no Hugging Face layout (positional_embedding_res); write them as a "
        "LongCLIP .pt instead");
  std::map<std::string, std::string> plain(plain_renames().begin(), plain_renames().end());
  std::map<std::string, std::string> transposed(transposed_renames().begin(),
                                                transposed_renames().end());
  std::map<std::string, std::string> block(block_renames().begin(), block_renames().end());
  StateDict out;
  for (const auto& [name, t] : openai) {
    if (auto it = plain.find(name); it != plain.end()) {
      out[it->second] = t;
      continue;
    }
    if (auto it = transposed.find(name); it != transposed.end()) {
      out[it->second] = t.t().contiguous();
      continue;
    }
    bool mapped = false;
    for (const auto& [oprefix, hprefix] : tower_prefixes()) {
      if (!starts_with(name, oprefix)) continue;
      const std::string rest = name.substr(oprefix.size());
      const auto dot = rest.find('.');
      const std::string bprefix = hprefix + rest.substr(0, dot) + ".";
      const std::string suffix = rest.substr(dot + 1);
      if (auto it = block.find(suffix); it != block.end()) {
        out[bprefix + it->second] = t;
        mapped = true;
      } else if (suffix == "attn.in_proj_weight" || suffix == "attn.in_proj_bias") {
        const std::string kind = suffix == "attn.in_proj_weight" ? "weight" : "bias";
        auto parts = t.chunk(3, 0);
        out[bprefix + "self_attn.q_proj." + kind] = parts[0].contiguous();
        out[bprefix + "self_attn.k_proj." + kind] = parts[1].contiguous();
        out[bprefix + "self_attn.v_proj." + kind] = parts[2].contiguous();
        mapped = true;
      }
      break;
    }
    if (!mapped) throw ModelError("tensor '" + name + "' has no Hugging Face CLIPModel name");
  }
  return out;
}

ClipDims infer_dims(const StateDict& sd, const std::string& source) {
  ClipDims d;
  const auto& conv = need(sd, "visual.conv1.weight", 4, source);
  d.vision_width = conv.size(0);
  d.vision_patch = conv.size(-1);
  const int64_t npos = need(sd, "visual.positional_embedding", 2, source).size(0);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(npos - 1))));
  if (grid * grid + 1 != npos)
    throw ModelError("visual.positional_embedding" + in(source) + " has " + std::to_string(npos) +
                     " rows, not a square grid plus the class token");
  d.image_resolution = d.vision_patch * grid;
  d.vision_layers = count_blocks(sd, "visual.transformer.resblocks.");
  d.vision_heads = default_heads(d.vision_width);
  d.vision_mlp = need(sd, "visual.transformer.resblocks.0.mlp.c_fc.weight", 2, source).size(0);
  d.embed_dim = need(sd, "visual.proj", 2, source).size(1);

  d.text_width = need(sd, "ln_final.weight", 1, source).size(0);
  d.context_length = need(sd, "positional_embedding", 2, source).size(0);
  d.vocab_size = need(sd, "token_embedding.weight", 2, source).size(0);
  d.text_layers = count_blocks(sd, "transformer.resblocks.");
  d.text_heads = default_heads(d.text_width);
  d.text_mlp = need(sd, "transformer.resblocks.0.mlp.c_fc.weight", 2, source).size(0);
  d.long_context = sd.count("positional_embedding_res") > 0;
  return d;
}

namespace {

Activation parse_activation(const std::string& act, const std::string& source) {
  if (act == "quick_gelu") return Activation::kQuickGelu;
  if (act == "gelu") return Activation::kGelu;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
    return Activation::kGeluTanh;
  throw ModelError("unsupported hidden_act '" + act + "' in " + source +
                   " (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)");
}

const nlohmann::json* sub_config(const nlohmann::json& cfg, const char* key) {
  for (const auto& k : {std::string(key), std::string(key) + "_dict"})
    if (cfg.contains(k) && cfg[k].is_object()) return &cfg[k];
  return nullptr;
}

void check_config_size(const nlohmann::json& cfg, const char* key, int64_t actual,
                       const std::string& what, const std::string& source) {
  if (!cfg.contains(key) || !cfg[key].is_number_integer()) return;
  const int64_t stated = cfg[key].get<int64_t>();
  if (stated != actual)
    throw ModelError(source + ": " + what + "." + key + " = " + std::to_string(stated) +
                     " but the weights say " + std::to_string(actual) +
                     "; config.json and the weights do not belong together");
}

void apply_parsed_config(const nlohmann::json& cfg, const std::string& source, ClipDims& d);

}  // namespace

void apply_hf_config(const std::string& config_json, const std::string& source, ClipDims& d) {
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(config_json);
  } catch (const std::exception& e) {
    throw ModelError(source + " is not valid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw ModelError(source + " is not a JSON object");
  try {
    apply_parsed_config(cfg, source, d);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(source + ": a config value has the wrong type: " + e.what());
  }
}

namespace {

void apply_parsed_config(const nlohmann::json& cfg, const std::string& source, ClipDims& d) {
  if (const auto* text = sub_config(cfg, "text_config")) {
    const auto& t = *text;
    check_config_size(t, "hidden_size", d.text_width, "text_config", source);
    check_config_size(t, "num_hidden_layers", d.text_layers, "text_config", source);
    check_config_size(t, "vocab_size", d.vocab_size, "text_config", source);
    check_config_size(t, "max_position_embeddings", d.context_length, "text_config", source);
    if (t.contains("num_attention_heads")) d.text_heads = t["num_attention_heads"].get<int64_t>();
    if (t.contains("hidden_act")) d.activation = parse_activation(t["hidden_act"], source);
    if (t.contains("layer_norm_eps")) d.layer_norm_eps = t["layer_norm_eps"].get<double>();
    // transformers pools at argmax(ids) when eos_token_id is the legacy 2, else at the first eos.
    // An eos equal to the largest id pools exactly where argmax does: keep the one rule (and the
    // same fingerprint as the OpenAI-layout files of the same weights).
    const int64_t eos = t.value("eos_token_id", int64_t{2});
    d.eos_token_id = (eos == 2 || eos == d.vocab_size - 1) ? -1 : eos;
    if (t.contains("bos_token_id") && t["bos_token_id"].is_number_integer())
      d.bos_token_id = t["bos_token_id"].get<int64_t>();
  }
  if (const auto* vision = sub_config(cfg, "vision_config")) {
    const auto& v = *vision;
    check_config_size(v, "hidden_size", d.vision_width, "vision_config", source);
    check_config_size(v, "num_hidden_layers", d.vision_layers, "vision_config", source);
    check_config_size(v, "patch_size", d.vision_patch, "vision_config", source);
    check_config_size(v, "image_size", d.image_resolution, "vision_config", source);
    if (v.contains("num_attention_heads")) d.vision_heads = v["num_attention_heads"].get<int64_t>();
    if (v.contains("hidden_act") && parse_activation(v["hidden_act"], source) != d.activation)
      throw ModelError(source + ": text and vision hidden_act differ, which is not supported");
  }
  check_config_size(cfg, "projection_dim", d.embed_dim, "config", source);
  if (d.text_heads < 1 || d.text_width % d.text_heads != 0 || d.vision_heads < 1 ||
      d.vision_width % d.vision_heads != 0)
    throw ModelError(source + ": num_attention_heads does not divide hidden_size");
}

}  // namespace

std::string make_hf_config(const ClipDims& d) {
  const char* act = d.activation == Activation::kQuickGelu ? "quick_gelu"
                    : d.activation == Activation::kGelu    ? "gelu"
                                                           : "gelu_pytorch_tanh";
  nlohmann::ordered_json text = {
      {"attention_dropout", 0.0},
      {"bos_token_id", d.bos_token_id >= 0 ? d.bos_token_id : d.vocab_size - 2},
      {"dropout", 0.0},
      {"eos_token_id", d.eos_token_id >= 0 ? d.eos_token_id : d.vocab_size - 1},
      {"hidden_act", act},
      {"hidden_size", d.text_width},
      {"initializer_factor", 1.0},
      {"initializer_range", 0.02},
      {"intermediate_size", d.text_mlp},
      {"layer_norm_eps", d.layer_norm_eps},
      {"max_position_embeddings", d.context_length},
      {"model_type", "clip_text_model"},
      {"num_attention_heads", d.text_heads},
      {"num_hidden_layers", d.text_layers},
      {"pad_token_id", 1},
      {"projection_dim", d.embed_dim},
      {"vocab_size", d.vocab_size},
  };
  nlohmann::ordered_json vision = {
      {"attention_dropout", 0.0},
      {"dropout", 0.0},
      {"hidden_act", act},
      {"hidden_size", d.vision_width},
      {"image_size", d.image_resolution},
      {"initializer_factor", 1.0},
      {"initializer_range", 0.02},
      {"intermediate_size", d.vision_mlp},
      {"layer_norm_eps", d.layer_norm_eps},
      {"model_type", "clip_vision_model"},
      {"num_attention_heads", d.vision_heads},
      {"num_channels", 3},
      {"num_hidden_layers", d.vision_layers},
      {"patch_size", d.vision_patch},
      {"projection_dim", d.embed_dim},
  };
  nlohmann::ordered_json cfg = {
      {"architectures", {"CLIPModel"}},   {"initializer_factor", 1.0},
      {"logit_scale_init_value", 2.6592}, {"model_type", "clip"},
      {"projection_dim", d.embed_dim},    {"text_config", text},
      {"torch_dtype", "float32"},         {"vision_config", vision},
  };
  return cfg.dump(2) + "\n";
}

std::vector<std::pair<std::string, Shape>> expected_tensors(const ClipDims& d) {
  std::vector<std::pair<std::string, Shape>> out;
  auto blocks = [&out](const std::string& prefix, int64_t layers, int64_t w, int64_t mlp) {
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = prefix + std::to_string(i) + ".";
      out.push_back({p + "attn.in_proj_weight", {3 * w, w}});
      out.push_back({p + "attn.in_proj_bias", {3 * w}});
      out.push_back({p + "attn.out_proj.weight", {w, w}});
      out.push_back({p + "attn.out_proj.bias", {w}});
      out.push_back({p + "ln_1.weight", {w}});
      out.push_back({p + "ln_1.bias", {w}});
      out.push_back({p + "mlp.c_fc.weight", {mlp, w}});
      out.push_back({p + "mlp.c_fc.bias", {mlp}});
      out.push_back({p + "mlp.c_proj.weight", {w, mlp}});
      out.push_back({p + "mlp.c_proj.bias", {w}});
      out.push_back({p + "ln_2.weight", {w}});
      out.push_back({p + "ln_2.bias", {w}});
    }
  };
  const int64_t vw = d.vision_width, tw = d.text_width;
  const int64_t grid = d.vision_patch > 0 ? d.image_resolution / d.vision_patch : 0;
  out.push_back({"positional_embedding", {d.context_length, tw}});
  if (d.long_context) out.push_back({"positional_embedding_res", {d.context_length, tw}});
  out.push_back({"text_projection", {tw, d.embed_dim}});
  out.push_back({"logit_scale", {}});
  out.push_back({"visual.class_embedding", {vw}});
  out.push_back({"visual.positional_embedding", {grid * grid + 1, vw}});
  out.push_back({"visual.proj", {vw, d.embed_dim}});
  out.push_back({"visual.conv1.weight", {vw, 3, d.vision_patch, d.vision_patch}});
  out.push_back({"visual.ln_pre.weight", {vw}});
  out.push_back({"visual.ln_pre.bias", {vw}});
  blocks("visual.transformer.resblocks.", d.vision_layers, vw, d.vision_mlp);
  out.push_back({"visual.ln_post.weight", {vw}});
  out.push_back({"visual.ln_post.bias", {vw}});
  blocks("transformer.resblocks.", d.text_layers, tw, d.text_mlp);
  out.push_back({"token_embedding.weight", {d.vocab_size, tw}});
  out.push_back({"ln_final.weight", {tw}});
  out.push_back({"ln_final.bias", {tw}});
  return out;
}

void check_state_dict(const StateDict& sd, const ClipDims& dims, const std::string& source) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  for (const auto& [name, shape] : expected_tensors(dims)) {
    expected.insert(name);
    auto it = sd.find(name);
    if (it == sd.end()) {
      problems.push_back("missing '" + name + "'");
    } else if (it->second.sizes() != at::IntArrayRef(shape)) {
      // logit_scale is 0-d in every known file; accept a [1] tensor as well.
      if (!(name == "logit_scale" && it->second.numel() == 1))
        problems.push_back("'" + name + "' has shape " + shape_str(it->second.sizes()) +
                           ", expected " + shape_str(shape));
    }
  }
  for (const auto& [name, t] : sd)
    if (!expected.count(name)) problems.push_back("unexpected '" + name + "'");
  if (problems.empty()) return;
  std::string msg = "the weights" + in(source) + " are not a consistent CLIP/LongCLIP model: ";
  for (size_t i = 0; i < problems.size() && i < 8; ++i) msg += (i ? "; " : "") + problems[i];
  if (problems.size() > 8) msg += "; ... (" + std::to_string(problems.size()) + " problems)";
  throw ModelError(msg);
}

}  // namespace clipshard
