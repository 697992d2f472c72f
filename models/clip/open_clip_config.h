// open_clip model configurations: the `open_clip_config.json` of a hub-style open_clip directory
// ({"model_cfg": ..., "preprocess_cfg": ...}), a bare model config (open_clip's
// src/open_clip/model_configs/NAME.json), and a built-in table of open_clip's common ViT models
// (open_clip v3.3.0) for bare state dicts. Only what the OpenAI-layout ClipModel computes exactly
// is accepted: any setting that would change the forward (layer scale, attentional pooling, custom
// or Hugging Face text towers, logit bias, other pooling, ...) is refused by name.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "models/clip/clip_layout.h"

namespace clipshard {

// open_clip's eval transform (image_transform(..., is_train=False)) for the accepted configs:
// Resize(image_size, bicubic) of the shortest side, CenterCrop(image_size) (torchvision
// rounding), convert("RGB") after the resize, ToTensor, Normalize(mean, std).
struct OpenClipPreprocess {
  int64_t image_size = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // open_clip OPENAI_DATASET_MEAN
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};  // OPENAI_DATASET_STD
};

// The accepted subset of open_clip's CLIPVisionCfg / CLIPTextCfg; defaults are open_clip's
// dataclass defaults (a key absent from the file takes them, as in open_clip).
struct OpenClipConfig {
  std::string source;  // the file or "open_clip architecture NAME" (for messages)
  int64_t embed_dim = 512;
  bool quick_gelu = false;  // absent = nn.GELU (exact erf)
  int64_t vision_layers = 12, vision_width = 768, vision_head_width = 64, vision_patch = 16;
  int64_t image_size = 224;
  double vision_mlp_ratio = 4.0;
  int64_t context_length = 77, vocab_size = 49408, text_width = 512, text_heads = 8,
          text_layers = 12;
  double text_mlp_ratio = 4.0;
  OpenClipPreprocess preprocess;
};

// Parses open_clip_config.json, or a bare model config (top-level "vision_cfg"/"text_cfg").
// Throws ModelError naming `source` and the key for invalid JSON, a wrong type, an unknown key,
// or a setting this tool cannot compute exactly (never an approximate model).
OpenClipConfig parse_open_clip_config(const std::string& json_text, const std::string& source);

// The built-in table (open_clip v3.3.0 model_configs, verbatim): ViT-B-32, ViT-B-16, ViT-L-14,
// ViT-L-14-336, ViT-H-14, ViT-g-14, ViT-bigG-14 and the -quickgelu variants open_clip has (there
// is no ViT-g-14-quickgelu). Preprocessing is open_clip's default (OpenAI mean/std).
std::vector<std::string> open_clip_architecture_names();

// `architecture` is a table name, or the path of a config file (either form above). Throws
// ModelError listing the table when it is neither.
OpenClipConfig resolve_open_clip_architecture(const std::string& architecture);

// Checks every size the config states against the shape-inferred `dims` of the weights in
// `weights_source` and sets what shapes cannot tell (heads, activation, eos pooling, eps). Throws
// ModelError naming the config, the key and the weights file on a contradiction.
void apply_open_clip_config(const OpenClipConfig& cfg, const std::string& weights_source,
                            ClipDims& dims);

}  // namespace clipshard
