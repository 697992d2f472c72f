// The CLIP / LongCLIP dual encoder (official clip/model.py and Long-CLIP model_longclip.py forward,
// docs/CONFIG.md). Parameters carry the OpenAI state dict names, so load_weights() matches by name.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/clip/clip_layout.h"

namespace clipshard {

// Device and dtype the model runs in. One place decides: resolve_device().
struct DeviceChoice {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// device: "" or "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:N".
// precision: "" or "auto" (fp16 on CUDA, fp32 on CPU: the model's own default; the operators'
// DataFlow-MM choice is worker/operator_spec.h resolve_precision), "fp32", "bf16" (CPU and CUDA),
// "fp16" (CUDA only: LibTorch has no fp16 CPU kernels for the forward's ops).
// Throws ModelError for an unknown spelling, CUDA requested but unavailable, or fp16 on CPU.
DeviceChoice resolve_device(const std::string& device, const std::string& precision);

// "fp32", "fp16", "bf16" for the dtypes resolve_device chooses ("?" for others).
const char* precision_name(at::ScalarType dtype);

class VisionTowerImpl;
class TransformerImpl;

class ClipModelImpl : public torch::nn::Module {
 public:
  // Builds a model with uninitialised weights of the given architecture on the CPU, fp32.
  explicit ClipModelImpl(const ClipDims& dims);

  // Takes OpenAI-layout tensors in (any dtype; converted to fp32): every parameter then shares the
  // memory of its fp32 contiguous source tensor (no copy), so the caller must not modify those
  // tensors afterwards. Requires check_state_dict() to pass. Throws ModelError naming `source`.
  void load_weights(const StateDict& openai, const std::string& source = "");

  // Moves to the device/dtype. LayerNorm and softmax run in fp32 even in fp16, as CLIP's LayerNorm
  // subclass does. For fp32 on the CPU the projection weights are also packed for oneDNN
  // (models/clip/packed_linear.h; a second copy of them, in oneDNN's layout) where the build has
  // it.
  void place(const DeviceChoice& choice);

  // images: float [B, 3, R, R] (R = dims().image_resolution), any device. Returns the raw
  // (unnormalised) features, float32 [B, embed_dim] on the CPU. Throws ModelError on a bad shape.
  at::Tensor encode_image(const at::Tensor& images);

  // ids: int64 [B, L] with 1 <= L <= context_length (shorter than the context = dynamic padding:
  // the result equals padding to the full context, as the text tower is causal). The feature is
  // taken at the first eos_token_id (or the first largest id when eos_token_id is -1 or absent
  // from a row). Returns float32 [B, embed_dim] on the CPU. Throws ModelError on a bad shape.
  at::Tensor encode_text(const at::Tensor& ids);

  // Position of each row's pooled token (int64 [B], CPU), the rule encode_text uses.
  at::Tensor pooled_positions(const at::Tensor& ids) const;

  // exp(logit_scale) as loaded.
  double logit_scale() const;
  const ClipDims& dims() const { return dims_; }
  const DeviceChoice& placement() const { return placement_; }

 private:
  // Rows per forward on the CPU: batches are cut so that the largest activation (tokens × the
  // MLP or qkv width) stays below glibc's mmap threshold. Unlimited on other devices.
  int64_t micro_batch(int64_t tokens, int64_t width, int64_t mlp) const;
  // encode_text for validated CPU ids and their pooled positions.
  at::Tensor encode_text_rows(const at::Tensor& ids_cpu, const at::Tensor& pos);
  // (Re)packs the projection weights for `choice`, or drops the packed copies where it does not use
  // them: called by place() and after load_weights().
  void pack_weights(const DeviceChoice& choice);

  ClipDims dims_;
  DeviceChoice placement_;
  bool placed_ = false;  // place() was called (weights are packed from then on)
  std::shared_ptr<VisionTowerImpl> visual_;
  std::shared_ptr<TransformerImpl> transformer_;
  at::Tensor token_embedding_;
  at::Tensor positional_embedding_;
  at::Tensor positional_embedding_res_;  // LongCLIP only
  at::Tensor ln_final_weight_, ln_final_bias_;
  at::Tensor text_projection_;
  at::Tensor logit_scale_;
};
TORCH_MODULE(ClipModel);

}  // namespace clipshard
