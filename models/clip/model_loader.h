// The model factory: a model name or path -> a ready CLIP / LongCLIP model, whatever on-disk format
// the user has (Hugging Face directory, OpenAI .pt TorchScript archive or state dict, LongCLIP
// checkpoint file or directory; docs/CONFIG.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/clip/clip_model.h"
#include "models/clip/open_clip_config.h"

namespace clipshard {

enum class ModelFamily {
  kAny,       // whatever the weights are
  kClip,      // 77-token OpenAI CLIP (ImageCLIPEvaluator, ImageClipFilter)
  kLongClip,  // LongCLIP: positional_embedding_res required (ImageLongCLIPEvaluator)
};

struct ModelRequest {
  std::string name_or_path;  // a path, or a name such as "openai/clip-vit-base-patch32"
  ModelFamily family = ModelFamily::kAny;
  std::filesystem::path models_dir;  // searched for names; "" = not searched
  std::string device;                // "" = auto (see resolve_device)
  std::string precision;             // "" = auto: fp16 on CUDA, fp32 on CPU
  // An open_clip architecture for a bare state dict without a config: a name of
  // open_clip_architecture_names() (e.g. "ViT-B-32-quickgelu") or an open_clip config file.
  // "" = none. Refused for files that carry their own architecture (Hugging Face config.json,
  // open_clip_config.json, TorchScript, LongCLIP).
  std::string architecture;
};

enum class ModelFormat {
  kHuggingFaceDir,      // config.json + model.safetensors / pytorch_model.bin
  kOpenAIStateDict,     // torch.save'd OpenAI-layout state dict (.pt)
  kOpenAITorchScript,   // OpenAI's released TorchScript archive (.pt)
  kLongClipCheckpoint,  // torch.save'd LongCLIP state dict (.pt/.bin/.ckpt)
  kHuggingFaceFile,     // a lone safetensors/.bin file with Hugging Face names
  kOpenClipDir,         // open_clip_config.json + open_clip_model.safetensors / _pytorch_model.bin
  kOpenClipStateDict,   // a bare OpenAI-layout state dict + ModelRequest::architecture
};
const char* model_format_name(ModelFormat format);

struct LoadedModel {
  ClipModel model{nullptr};
  ClipDims dims;
  ModelFamily family = ModelFamily::kClip;  // kClip or kLongClip (what the weights are)
  ModelFormat format = ModelFormat::kOpenAIStateDict;
  std::filesystem::path resolved_path;  // the directory or file the name resolved to
  std::filesystem::path weights_file;   // the checkpoint file actually read
  // Hugging Face tokenizer files next to the weights, when both exist; otherwise the caller uses
  // the bundled BPE vocabulary.
  std::optional<std::filesystem::path> vocab_json, merges_txt;
  // Set for open_clip models (kOpenClipDir, kOpenClipStateDict): they run with open_clip's own
  // tokenizer and this eval transform, whatever operator uses them.
  std::optional<OpenClipPreprocess> open_clip;
  // 32 hex digits: XXH3-128 of the canonical fp32 weights (names, shapes, bytes) and the config
  // fields that change the forward (activation, eos id, heads, eps). The same weights give the same
  // id in every format; the embedding cache keys on it.
  std::string fingerprint;
};

// Where `name` resolves to, in this order: the name as an existing path; <models_dir>/<name>;
// <models_dir>/<name with '/' replaced by "--">; the Hugging Face cache layout
// models--ORG--NAME/snapshots/<rev>/ (refs/main's revision first, else the newest snapshot) under
// $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub and
// models_dir. Throws ModelError listing every place looked at.
std::filesystem::path resolve_model_path(const std::string& name,
                                         const std::filesystem::path& models_dir);

// For a LongCLIP (or any checkpoint) directory: among its regular .pt/.bin/.ckpt files, those whose
// name contains "longclip" (case-insensitive) if any, the first in sorted order. nullopt if none.
std::optional<std::filesystem::path> find_checkpoint_in_dir(const std::filesystem::path& dir);

// Resolves, reads, converts to the OpenAI layout, checks the family and the shapes, builds and
// places the model (device, dtype as requested). Changes no process-wide state (threads, malloc:
// tune_process in models/weights/process_tuning.h). Throws ModelError (not found with the
// places searched, wrong family, corrupt checkpoint with the CheckpointError message, unusable
// device, a config refused by name, a bare state dict whose architecture cannot be known).
//
// What a file is (docs/CONFIG.md, "Model files"): a directory with config.json + model.safetensors
// / pytorch_model.bin (or their .index.json shard index) is Hugging Face; else one with
// open_clip_config.json + open_clip_model.safetensors / open_clip_pytorch_model.bin (or index) is
// open_clip; a TorchScript archive is OpenAI; Hugging Face tensor names are Hugging Face; an
// OpenAI-layout state dict with positional_embedding_res is LongCLIP; with `architecture` set, an
// OpenAI-layout state dict is that open_clip model; without it, only a torch.save'd `.pt` file
// whose name does not start with "open_clip" is taken as OpenAI CLIP (QuickGELU, width/64 heads):
// any other bare state dict (.bin, .safetensors, .ckpt, open_clip_*) is refused, never guessed.
LoadedModel load_model(const ModelRequest& request);

// The steps of load_model without building a model: the canonical fp32 weights and their metadata
// (`model` stays null). Throws like load_model.
LoadedModel read_model_weights(const ModelRequest& request, StateDict& openai_out);

// The fingerprint of canonical weights + dims (see LoadedModel::fingerprint).
std::string weights_fingerprint(const StateDict& openai, const ClipDims& dims);

}  // namespace clipshard
