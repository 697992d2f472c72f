// What the shard phases (worker/shard_phases.h) need from the models: the image and text "spaces"
// the operators embed into, tokenization, the two towers and the names of the embedding cache
// tables. ModelBank implements it with real models; tests implement it with fakes that count calls
// and record batch compositions, so the phases are unit-tested without weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "models/image/preprocess.h"
#include "models/text/clip_tokenizer.h"
#include "shard/cache/cache_table.h"

namespace clipshard {

// One image preprocessing of one model: operators whose images map to the same space share their
// image embeddings.
struct ImageSpace {
  int model = 0;
  std::string pipeline;  // "hf224", "tv336", "oc224", ... (cache table name)
  PreprocessSpec spec;
};

// One tokenization of one model: operators whose captions map to the same space share their text
// embeddings.
struct TextSpace {
  int model = 0;
  std::string pipeline;  // "hf77", "longclip248", "oc77" (cache table name)
  TokenizerFlavor flavor = TokenizerFlavor::kHuggingFaceFast;
  int context_length = 77;
  bool split_join = false;  // Long-CLIP operator: " ".join(text.split()) first
};

class EmbeddingModels {
 public:
  virtual ~EmbeddingModels() = default;

  // The space pipeline operator `op` (pipeline order) embeds its images / captions into: an index
  // into image_spaces() / text_spaces().
  virtual int image_space_of(size_t op) const = 0;
  virtual int text_space_of(size_t op) const = 0;
  virtual const std::vector<ImageSpace>& image_spaces() const = 0;
  virtual const std::vector<TextSpace>& text_spaces() const = 0;

  // Content fingerprint of a model's weights (the embedding cache's model id). Thread-safe.
  virtual const std::string& model_id(int model) const = 0;
  // What the model's numerics add to its cache tables' pipeline names ("" for fp32 on the CPU,
  // "@fp16-cuda", ...), so that an embedding is never reused by a run of other numerics.
  // Thread-safe (the decode pool looks the cache up).
  virtual std::string cache_numerics_suffix(int model) const = 0;
  // What the embedding cache records about a model's tables.
  virtual TableDescription table_description(int model) const = 0;

  // Tokenizes a caption for a text space (applies split_join). Thread-safe.
  virtual TokenizedText tokenize(int text_space, std::string_view caption) const = 0;
  // images: float [B, 3, R, R] on the CPU (R = the space's spec.size). Returns L2-normalised
  // float32 [B, E] on the CPU.
  virtual at::Tensor encode_images(int image_space, const at::Tensor& images) = 0;
  // ids: int64 [B, L] on the CPU, zero-padded. Returns L2-normalised float32 [B, E] on the CPU.
  virtual at::Tensor encode_texts(int text_space, const at::Tensor& ids) = 0;

  // True when a model runs on a CUDA device (image batches are then staged in page-locked memory).
  virtual bool uses_cuda() const = 0;
};

// The embedding cache tables of an image / text space: {model_id, "image" | "text", pipeline +
// cache_numerics_suffix}. The one place their names are formed. Thread-safe.
CacheTable image_cache_table(const EmbeddingModels& models, int image_space);
CacheTable text_cache_table(const EmbeddingModels& models, int text_space);

}  // namespace clipshard
