#include "models/clip/random_model.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

namespace clipshard {
namespace fs = std::filesystem;

namespace {

struct Preset {
  const char* name;
  int64_t vw, vl, patch, res, tw, tl, ctx, vocab, embed;
  bool long_context;
};

constexpr Preset kPresets[] = {
    {"micro", 64, 2, 32, 64, 64, 2, 77, 1024, 16, false},
    {"tiny", 128, 2, 32, 224, 64, 2, 77, 49408, 32, false},
    {"vit-b-32", 768, 12, 32, 224, 512, 12, 77, 49408, 512, false},
    {"longclip-tiny", 128, 2, 14, 336, 64, 2, 248, 49408, 32, true},
    {"longclip-l-336", 1024, 24, 14, 336, 768, 12, 248, 49408, 768, true},
};

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1], 53 random bits.
double uniform01(uint64_t& state) {
  return (static_cast<double>(splitmix64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

// mean + std * N(0, 1), from a stream that depends only on (seed, name, chunk): the result does
// not depend on the number of threads or the order tensors are drawn in.
at::Tensor normal(at::IntArrayRef shape, double mean, double std, uint64_t seed,
                  const std::string& name) {
  auto t = torch::empty(shape, torch::kFloat);
  float* data = t.data_ptr<float>();
  const int64_t n = t.numel();
  const uint64_t base = XXH64(name.data(), name.size(), seed);
  constexpr int64_t kChunk = 1 << 16;
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      uint64_t state = base ^ (static_cast<uint64_t>(c) * 0xD1B54A32D192ED03ULL);
      const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
      for (int64_t i = lo; i < hi; i += 2) {
        // Box-Muller: two normals per pair of uniforms.
        const double r = std::sqrt(-2.0 * std::log(uniform01(state)));
        const double phi = 2.0 * M_PI * uniform01(state);
        data[i] = static_cast<float>(mean + std * r * std::cos(phi));
        if (i + 1 < hi) data[i + 1] = static_cast<float>(mean + std * r * std::sin(phi));
      }
    }
  });
  return t;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ClipDims preset_dims(const std::string& preset) {
  for (const auto& p : kPresets) {
    if (preset != p.name) continue;
    ClipDims d;
    d.vision_width = p.vw;
    d.vision_layers = p.vl;
    d.vision_heads = std::max<int64_t>(1, p.vw / 64);
    d.vision_mlp = 4 * p.vw;
    d.vision_patch = p.patch;
    d.image_resolution = p.res;
    d.text_width = p.tw;
    d.text_layers = p.tl;
    d.text_heads = std::max<int64_t>(1, p.tw / 64);
    d.text_mlp = 4 * p.tw;
    d.context_length = p.ctx;
    d.vocab_size = p.vocab;
    d.embed_dim = p.embed;
    d.long_context = p.long_context;
    return d;
  }
  std::string names;
  for (const auto& p : kPresets) names += std::string(names.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown random model preset '" + preset + "' (known: " + names +
                              ")");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const auto& p : kPresets) out.push_back(p.name);
  return out;
}

StateDict make_random_weights(const ClipDims& d, uint64_t seed) {
  StateDict sd;
  for (const auto& [name, shape] : expected_tensors(d)) {
    const bool visual = name.rfind("visual.", 0) == 0;
    const double w = static_cast<double>(visual ? d.vision_width : d.text_width);
    const double layers = static_cast<double>(visual ? d.vision_layers : d.text_layers);
    const double attn_std = 1.0 / std::sqrt(w);
    const double proj_std = attn_std / std::sqrt(2.0 * layers);
    const double fc_std = 1.0 / std::sqrt(2.0 * w);
    double mean = 0.0, std = 0.02;
    if (name == "logit_scale") {
      sd[name] = torch::full({}, std::log(1.0 / 0.07), torch::kFloat);
      continue;
    } else if (ends_with(name, "ln_1.weight") || ends_with(name, "ln_2.weight") ||
               ends_with(name, "ln_pre.weight") || ends_with(name, "ln_post.weight") ||
               name == "ln_final.weight") {
      mean = 1.0;
      std = 0.1;
    } else if (ends_with(name, "ln_1.bias") || ends_with(name, "ln_2.bias") ||
               ends_with(name, "ln_pre.bias") || ends_with(name, "ln_post.bias") ||
               name == "ln_final.bias") {
      std = 0.05;
    } else if (ends_with(name, ".bias")) {
      std = 0.02;  // attention and MLP biases
    } else if (ends_with(name, "attn.in_proj_weight")) {
      std = attn_std;
    } else if (ends_with(name, "attn.out_proj.weight") || ends_with(name, "mlp.c_proj.weight")) {
      std = proj_std;
    } else if (ends_with(name, "mlp.c_fc.weight")) {
      std = fc_std;
    } else if (name == "token_embedding.weight") {
      std = 0.02;
    } else if (name == "positional_embedding" || name == "positional_embedding_res") {
      std = 0.01;
    } else if (name == "visual.conv1.weight") {
      std = 1.0 / std::sqrt(3.0 * 3.0 * d.vision_patch * d.vision_patch);
    } else {  // class/positional embeddings and projections: width^-0.5
      std = attn_std;
    }
    sd[name] = normal(shape, mean, std, seed, name);
  }
  return sd;
}

void write_random_model(const std::string& preset, RandomModelFormat format, uint64_t seed,
                        const fs::path& out_path, at::ScalarType dtype) {
  const ClipDims dims = preset_dims(preset);
  if (dims.long_context != (format == RandomModelFormat::kLongClipCheckpoint))
    throw std::invalid_argument(
        "preset '" + preset + "' " +
        (dims.long_context ? "is LongCLIP: write it as a LongCLIP checkpoint"
                           : "is plain CLIP: write it as a Hugging Face directory or OpenAI .pt"));
  if (dtype != at::kFloat && dtype != at::kHalf)
    throw std::invalid_argument("random models are written in fp32 or fp16");
  StateDict sd = make_random_weights(dims, seed);
  for (auto& [name, t] : sd) t = t.to(dtype).contiguous();
  std::error_code ec;
  if (format == RandomModelFormat::kHuggingFaceDir) {
    fs::create_directories(out_path, ec);
    if (ec)
      throw std::runtime_error("cannot create directory " + out_path.string() + ": " +
                               ec.message());
    std::ofstream config(out_path / "config.json", std::ios::binary | std::ios::trunc);
    config << make_hf_config(dims);  // bos/eos = the two largest ids, as CLIP's vocabulary
    if (!config.flush())
      throw std::runtime_error("cannot write " + (out_path / "config.json").string());
    write_safetensors(out_path / "model.safetensors", to_hf_layout(sd));
  } else {
    if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path(), ec);
    write_torch_zip(out_path, sd, out_path.stem().string());
  }
}

}  // namespace clipshard
