// The models a pipeline needs, each loaded once, and the image/text "spaces" the operators embed
// into. Operators that use the same model and the same preprocessing share a space, so their
// embeddings are computed once (e.g. ImageCLIPEvaluator + ImageClipFilter on one model).
//
// Pipelines per operator, whatever format the weights come in:
//   ImageCLIPEvaluator, ImageClipFilter: Hugging Face CLIPProcessor — fast tokenizer, crop floor.
//   ImageLongCLIPEvaluator: official Long-CLIP — " ".join(text.split()), official tokenizer at
//   248 with truncation, torchvision crop (round half to even).
// An open_clip model (LoadedModel::open_clip) overrides this for every operator: open_clip's
// tokenizer and its eval transform from the model's preprocess_cfg (pipelines "oc<n>").
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "models/image/preprocess.h"
#include "models/text/clip_tokenizer.h"
#include "shard/cache/cache_table.h"
#include "worker/embedding_models.h"
#include "worker/operator_spec.h"
#include "worker/placement.h"
#include "worker/shard_processor.h"

namespace clipshard {

struct ModelBankOptions {
  std::filesystem::path models_dir;  // where model names are looked up (besides the HF cache)
  std::string device = "auto";       // "auto" | "cpu" | "cuda" | "cuda:N" (operators may override)
  std::string precision = "auto";    // "auto" | "fp32" | "fp16" | "bf16" (operators may override;
                                     // resolve_precision in operator_spec.h)
  int local_rank = 0;  // this rank's place on its node: an operator's "cuda"/"auto" is its GPU
  HostResources host;  // the machine's devices (HostResources::probe()), for operators' devices
};

class ModelBank : public EmbeddingModels {
 public:
  // Loads every model the operators name (each distinct (model, device, precision) once). Throws
  // ModelError (models/clip) naming the model and where it looked, before any work starts.
  // Changes no process-wide state (Torch's threads, malloc): the program does, with tune_process
  // (models/weights/process_tuning.h).
  ModelBank(const std::vector<OperatorSpec>& ops, const ModelBankOptions& options);
  ~ModelBank() override;
  ModelBank(const ModelBank&) = delete;
  ModelBank& operator=(const ModelBank&) = delete;

  int image_space_of(size_t op) const override { return op_image_space_[op]; }
  int text_space_of(size_t op) const override { return op_text_space_[op]; }
  const std::vector<ImageSpace>& image_spaces() const override { return image_spaces_; }
  const std::vector<TextSpace>& text_spaces() const override { return text_spaces_; }

  // Content fingerprint of a model's weights (the embedding cache's model id).
  const std::string& model_id(int model) const override;
  std::string model_description(int model) const;  // path, format, device (for logs/summary)
  // What the embedding cache records about a model's tables (shard/cache/cache_table.h): the
  // name the config gave, the weights file, format, fingerprint and the precision it runs at.
  TableDescription table_description(int model) const override;

  // What the model's numerics add to the pipeline names of its embedding cache tables: "" for
  // fp32 on the CPU (the reference numerics, and the table names of caches written before the
  // precision was configurable), else "@<precision>-<device type>" ("@fp16-cuda", "@bf16-cpu",
  // "@fp32-cuda"), so that an embedding computed in one precision or on one device type is never
  // reused by a run in another. The one place the cache learns the precision from.
  std::string cache_numerics_suffix(int model) const override;

  // Per operator (constructor order): the model it runs on this rank, resolved.
  std::vector<OperatorModelInfo> operator_models() const;

  // Tokenizes a caption for a text space (applies split_join). Thread-safe.
  TokenizedText tokenize(int text_space, std::string_view caption) const override;

  // images: float [B, 3, R, R] on the CPU. Returns L2-normalised float32 [B, E] on the CPU.
  at::Tensor encode_images(int image_space, const at::Tensor& images) override;
  // ids: int64 [B, L] on the CPU. Returns L2-normalised float32 [B, E] on the CPU.
  at::Tensor encode_texts(int text_space, const at::Tensor& ids) override;

  bool uses_cuda() const override;

 private:
  struct Model;
  std::vector<std::unique_ptr<Model>> models_;
  std::vector<ImageSpace> image_spaces_;
  std::vector<TextSpace> text_spaces_;
  std::vector<int> op_image_space_, op_text_space_;
  std::vector<std::pair<std::string, std::string>> op_names_;  // (operator, model_name) per op
};

}  // namespace clipshard
