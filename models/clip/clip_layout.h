// CLIP / LongCLIP weights in the canonical (OpenAI state dict) layout: converting other layouts to
// it, inferring the architecture from tensor shapes, and the Hugging Face config.json that goes
// with the Hugging Face layout. docs/FORMATS.md and docs/CONFIG.md name the layouts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "models/weights/state_dict.h"

namespace clipshard {

// A model that cannot be used: not found (the message lists every place searched), wrong family
// for the request, missing or misshapen tensors, unreadable checkpoint (the CheckpointError message
// is included). Always names the file or model and what to do.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Activation { kQuickGelu, kGelu, kGeluTanh };

// The architecture. Everything but the fields marked "config" is inferred from tensor shapes.
struct ClipDims {
  int64_t vision_width = 0;
  int64_t vision_layers = 0;
  int64_t vision_heads = 0;  // width / 64 (at least 1), or the HF config's num_attention_heads
  int64_t vision_mlp = 0;    // MLP hidden size (4 * width in CLIP)
  int64_t vision_patch = 0;
  int64_t image_resolution = 0;  // patch * sqrt(positions - 1)
  int64_t text_width = 0;
  int64_t text_layers = 0;
  int64_t text_heads = 0;
  int64_t text_mlp = 0;
  int64_t context_length = 0;  // rows of positional_embedding (77 CLIP, 248 LongCLIP)
  int64_t vocab_size = 0;
  int64_t embed_dim = 0;
  bool long_context = false;  // LongCLIP: positional_embedding_res present
  // config: the text feature is taken at the first position holding this id; -1 (OpenAI/LongCLIP
  // files, legacy HF configs with eos 2) = at the first largest id, the official argmax(ids).
  int64_t eos_token_id = -1;
  int64_t bos_token_id = -1;                       // config; informational
  Activation activation = Activation::kQuickGelu;  // config hidden_act
  double layer_norm_eps = 1e-5;                    // config layer_norm_eps
  // LongCLIP: rows [0, kLongClipKeptPositions) of the positional embedding come from
  // positional_embedding, the rest from positional_embedding_res.
  static constexpr int64_t kLongClipKeptPositions = 20;
};

enum class WeightsLayout { kOpenAI, kHuggingFace };

// kHuggingFace when the names are transformers' CLIPModel names, else kOpenAI.
WeightsLayout detect_layout(const StateDict& tensors);

// Returns the tensors under OpenAI names as contiguous float32: Hugging Face names mapped back
// (q/k/v concatenated into in_proj_*, projections transposed, position_ids ignored), TorchScript's
// int64 input_resolution/context_length/vocab_size and a DDP "module." prefix dropped. Throws
// ModelError naming `source` on an unknown Hugging Face tensor or incomplete q/k/v triple.
StateDict to_openai_layout(const StateDict& tensors, WeightsLayout layout,
                           const std::string& source = "");

// The inverse mapping (transformers' convert_clip_original_pytorch_to_hf.py); tensors keep their
// dtype. Throws ModelError for LongCLIP weights (there is no Hugging Face LongCLIP layout).
StateDict to_hf_layout(const StateDict& openai);

// Infers the architecture from OpenAI-layout shapes (config fields keep their defaults). Throws
// ModelError naming `source` when a required tensor is missing or shapes are inconsistent.
ClipDims infer_dims(const StateDict& openai, const std::string& source = "");

// Applies a Hugging Face config.json (text: hidden_act, num_attention_heads, eos/bos ids,
// layer_norm_eps; vision: hidden_act, num_attention_heads) on top of shape-inferred dims and checks
// that the sizes it states agree with the shapes. Throws ModelError naming the file.
void apply_hf_config(const std::string& config_json, const std::string& source, ClipDims& dims);

// The config.json transformers writes for these dims (CLIPConfig, fp32).
std::string make_hf_config(const ClipDims& dims);

// Every tensor an OpenAI-layout model with these dims has, with its shape, in a fixed order.
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ClipDims& dims);

// Checks that every tensor the model needs exists with the shape `dims` implies and that no
// unexpected tensor is present. Throws ModelError listing the problems.
void check_state_dict(const StateDict& openai, const ClipDims& dims, const std::string& source);

}  // namespace clipshard
