// Random-weight CLIP / LongCLIP models written in real on-disk formats, for tests, demos and
// benchmarks where no real checkpoint is available. Deterministic from the seed on every platform.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/clip/clip_layout.h"

namespace clipshard {

// Presets: "micro" (vision 64/2/patch 32/64 px, text 64/2/77, vocab 1024, embed 16),
// "tiny" (vision 128/2/patch 32/224, text 64/2/77, embed 32), "vit-b-32" (768/12/32/224,
// 512/12/77, embed 512), "longclip-tiny" (128/2/patch 14/336, 64/2/248, embed 32),
// "longclip-l-336" (1024/24/patch 14/336, 768/12/248, embed 768). Vocabulary 49408 unless stated.
// Throws std::invalid_argument for an unknown preset.
ClipDims preset_dims(const std::string& preset);
std::vector<std::string> preset_names();

enum class RandomModelFormat {
  kHuggingFaceDir,      // out_path = directory: config.json + model.safetensors (CLIP presets only)
  kOpenAIStateDict,     // out_path = .pt file: torch.save'd OpenAI-layout state dict (CLIP presets)
  kLongClipCheckpoint,  // out_path = .pt file: torch.save'd LongCLIP state dict (LongCLIP presets)
};

// OpenAI-layout fp32 weights drawn like the official initialisation (text tower and projections as
// CLIP.initialize_parameters, embeddings N(0, w^-0.5)), with LayerNorm gains 1+N(0,0.1), biases
// N(0,0.05)/N(0,0.02) so that no tensor is an identity; logit_scale = ln(1/0.07).
StateDict make_random_weights(const ClipDims& dims, uint64_t seed);

// Writes the preset in the format (fp32, or fp16 when `dtype` is at::kHalf). Throws
// std::invalid_argument for a preset/format mismatch, std::runtime_error if writing fails.
void write_random_model(const std::string& preset, RandomModelFormat format, uint64_t seed,
                        const std::filesystem::path& out_path, at::ScalarType dtype = at::kFloat);

}  // namespace clipshard
