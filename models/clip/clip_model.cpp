#include "models/clip/clip_model.h"

#include <ATen/Context.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "models/clip/packed_linear.h"
#include "models/weights/host_memory.h"

namespace clipshard {
namespace {

// A module that only holds named parameters (so that names match the OpenAI state dict).
class ParamsImpl : public torch::nn::Module {
 public:
  at::Tensor add(const std::string& name, at::IntArrayRef shape) {
    // Uninitialised: load_weights() points every parameter at the loaded memory.
    return register_parameter(name, torch::empty(shape), /*requires_grad=*/false);
  }
};
TORCH_MODULE(Params);

// LayerNorm in fp32 whatever the model dtype, as CLIP's LayerNorm subclass does.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  const auto dtype = x.scalar_type();
  auto y = at::layer_norm(x.to(at::kFloat), {x.size(-1)}, w.to(at::kFloat), b.to(at::kFloat), eps);
  return y.to(dtype);
}

// fp32 GEMMs on the CPU go to oneDNN when LibTorch has it: AVX-512 kernels where the CPU has them
// and LibTorch's own OpenMP threads, where at::linear goes to the BLAS LibTorch links (OpenBLAS on
// Debian: AVX2 kernels, its own thread pool competing with OpenMP's). ATen reaches oneDNN's GEMM
// without layout conversions through a 1x1 convolution: x [M, K] row-major is, in memory, an NHWC
// image of M pixels with K channels, and the output [M, N] is the NHWC result (docs/
// PERFORMANCE.md has the measurements). The convolution reorders the weight into oneDNN's blocked
// layout on every call; where this build has oneDNN's own API (packed_linear.h) the fixed weights
// are packed when the model is placed and the same convolutions run on the packed copies.
// CLIPSHARD_CPU_GEMM=blas forces at::linear, =conv the per-call convolution (comparisons).
enum class CpuGemm { kBlas, kConv, kPacked };
CpuGemm cpu_gemm() {
  static const CpuGemm gemm = [] {
    const char* env = std::getenv("CLIPSHARD_CPU_GEMM");
    if ((env && std::strcmp(env, "blas") == 0) || !at::hasMKLDNN()) return CpuGemm::kBlas;
    if ((env && std::strcmp(env, "conv") == 0) || !packed_linear_available()) return CpuGemm::kConv;
    return CpuGemm::kPacked;
  }();
  return gemm;
}
bool cpu_gemm_onednn() { return cpu_gemm() != CpuGemm::kBlas; }

using Packed = std::shared_ptr<const PackedLinear>;

// `w` packed for fp32 CPU forwards, or nullptr where they do not use packed weights.
Packed pack_for(const DeviceChoice& choice, const at::Tensor& w) {
  if (!choice.device.is_cpu() || choice.dtype != at::kFloat || cpu_gemm() != CpuGemm::kPacked)
    return nullptr;
  return PackedLinear::pack(w);
}

// x [..., K] @ w[N, K]^T + b; `packed` (optional) is w packed for oneDNN, used where the per-call
// convolution below would run (its results are the same bit for bit: packed_linear.h).
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                  const PackedLinear* packed = nullptr) {
  if (packed && x.is_cpu() && x.scalar_type() == at::kFloat && x.numel() > x.size(-1)) {
    auto sizes = x.sizes().vec();
    const auto y = packed->apply(x.reshape({-1, sizes.back()}).contiguous(), b);
    if (y.defined()) {
      sizes.back() = y.size(1);
      return y.view(sizes);
    }
  }
  if (x.is_cpu() && x.scalar_type() == at::kFloat && cpu_gemm_onednn()) {
    auto sizes = x.sizes().vec();
    const int64_t k = sizes.back(), n = w.size(0);
    const auto flat = x.reshape({-1, k}).contiguous();
    const int64_t m = flat.size(0);
    const auto image = flat.as_strided({1, k, m, 1}, {m * k, 1, k, k});  // NHWC, H = M
    if (m > 1 && image.suggest_memory_format() == at::MemoryFormat::ChannelsLast) {
      const auto y =
          at::mkldnn_convolution(image, w.view({n, k, 1, 1}), b, {0, 0}, {1, 1}, {1, 1}, 1);
      if (y.is_contiguous(at::MemoryFormat::ChannelsLast)) {
        sizes.back() = n;
        return y.permute({0, 2, 3, 1}).view(sizes);
      }
    }
  }
  return at::linear(x, w, b);
}

// A grouped 1x1 convolution on oneDNN as a batched GEMM: for every group g,
// out[i, g, :] = x[i, g, :] @ w[g]^T, with x [M, G, K] and w [G, N, K] contiguous; returns
// [M, G, N] contiguous, or an undefined tensor when oneDNN did not give that layout.
at::Tensor grouped_matmul_nt(const at::Tensor& x, const at::Tensor& w) {
  const int64_t m = x.size(0), g = x.size(1), k = x.size(2), n = w.size(1);
  const auto image = x.as_strided({1, g * k, m, 1}, {m * g * k, 1, g * k, g * k});  // NHWC
  if (image.suggest_memory_format() != at::MemoryFormat::ChannelsLast) return {};
  const auto y =
      at::mkldnn_convolution(image, w.view({g * n, k, 1, 1}), {}, {0, 0}, {1, 1}, {1, 1}, g);
  if (!y.is_contiguous(at::MemoryFormat::ChannelsLast)) return {};
  return y.permute({0, 2, 3, 1}).view({m, g, n});
}

// Budget for the largest temporary of a CPU forward: glibc serves blocks of 32 MiB and more with
// mmap, fresh pages with a fault each, every layer (the cost with and without the budget:
// docs/PERFORMANCE.md, "Micro-batches under the mmap threshold"). Batches are cut into
// micro-batches (ClipModelImpl::micro_batch) and attention scores into chunks below it.
constexpr int64_t kActivationBudget = int64_t{24} << 20;

// `encode(first_row, rows)` over consecutive slices of at most `step` of `rows` rows, results
// concatenated along dim 0; one call with everything when it fits in one step.
template <typename Encode>
at::Tensor in_micro_batches(int64_t rows, int64_t step, Encode encode) {
  if (step >= rows) return encode(0, rows);
  std::vector<at::Tensor> parts;
  for (int64_t b0 = 0; b0 < rows; b0 += step)
    parts.push_back(encode(b0, std::min(step, rows - b0)));
  return at::cat(parts, 0);
}

// Sequences longer than this run attention one (image, head) pair at a time through linear();
// shorter ones as one grouped convolution for all pairs (the measured crossover:
// docs/PERFORMANCE.md, "Attention on oneDNN").
constexpr int64_t kPerPairAttentionTokens = 384;

// Multi-head attention of a [B, N, 3, H, D] fp32 CPU qkv projection on oneDNN, instead of ATen's
// bmm, which on the CPU runs one small single-threaded BLAS call per (image, head) pair (timings:
// docs/PERFORMANCE.md, "Attention on oneDNN"). q is scaled before the product, as
// nn.MultiheadAttention does. Returns the heads' output as [N, B, H·D] (sequence-major: rows in the
// order the output projection may take them), or an undefined tensor when oneDNN is missing or gave
// an unexpected layout (the caller then uses bmm).
at::Tensor cpu_attention_onednn(const at::Tensor& qkv, double scale, const at::Tensor& mask) {
  const int64_t batch = qkv.size(0), n = qkv.size(1), heads = qkv.size(3), dim = qkv.size(4);
  auto out = at::empty({n, batch, heads * dim}, qkv.options());
  // A few images at a time, so that the scores stay within the budget (LongCLIP-L/336: 16 × 577²
  // per image).
  const int64_t per_image = heads * n * n * 4;
  const int64_t chunk = std::max<int64_t>(1, kActivationBudget / per_image);
  for (int64_t b0 = 0; b0 < batch; b0 += chunk) {
    const int64_t bc = std::min(chunk, batch - b0);
    const auto part = qkv.narrow(0, b0, bc);
    const auto k = part.select(2, 1).permute({0, 2, 1, 3}).contiguous();   // [bc, H, N, D]
    const auto vt = part.select(2, 2).permute({0, 2, 3, 1}).contiguous();  // [bc, H, D, N]
    if (n > kPerPairAttentionTokens) {
      auto q = at::empty({bc, heads, n, dim}, qkv.options());
      at::mul_out(q, part.select(2, 0).permute({0, 2, 1, 3}), scale);
      for (int64_t b = 0; b < bc; ++b) {
        for (int64_t h = 0; h < heads; ++h) {
          auto scores = linear(q[b][h], k[b][h], at::Tensor());  // [N, N]
          if (mask.defined()) scores.add_(mask);
          const auto o = linear(at::softmax(scores, -1), vt[b][h], at::Tensor());  // [N, D]
          out.select(1, b0 + b).narrow(1, h * dim, dim).copy_(o);
        }
      }
      continue;
    }
    auto q = at::empty({n, bc, heads, dim}, qkv.options());
    at::mul_out(q, part.select(2, 0).permute({1, 0, 2, 3}), scale);
    auto scores = grouped_matmul_nt(q.view({n, bc * heads, dim}), k.view({bc * heads, n, dim}));
    if (!scores.defined()) return {};
    if (mask.defined()) scores.add_(mask.view({n, 1, n}));
    const auto probs = at::softmax(scores, -1);  // [N, bc·H, N]
    const auto o = grouped_matmul_nt(probs, vt.view({bc * heads, dim, n}));
    if (!o.defined()) return {};
    out.narrow(1, b0, bc).copy_(o.view({n, bc, heads * dim}));
  }
  return out;
}

// QuickGELU's constant: u·sigmoid(1.702·u).
constexpr double kQuickGeluScale = 1.702;

// In place: x is a temporary of the caller's.
at::Tensor activate(at::Tensor x, Activation act) {
  switch (act) {
    case Activation::kQuickGelu:
      // The same operations as x * sigmoid(1.702 * x).
      return x.mul_((x * kQuickGeluScale).sigmoid_());
    case Activation::kGelu:
      return torch::gelu(x);
    case Activation::kGeluTanh:
      return torch::gelu(x, "tanh");
  }
  return x;
}

struct BlockTensors {
  at::Tensor ln_1_w, ln_1_b, in_w, in_b, out_w, out_b, ln_2_w, ln_2_b, fc_w, fc_b, proj_w, proj_b;
  Packed in_p, out_p, fc_p, proj_p;  // the four projections packed (fp32 CPU placements only)
};

}  // namespace

// OpenAI's Transformer: `resblocks.{i}` of pre-LayerNorm residual attention blocks.
class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp, Activation act,
                  double eps)
      : width_(width), heads_(heads), act_(act), eps_(eps) {
    auto list = register_module("resblocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      auto block = Params();
      BlockTensors t;
      auto ln_1 = block->register_module("ln_1", Params());
      t.ln_1_w = ln_1->add("weight", {width});
      t.ln_1_b = ln_1->add("bias", {width});
      auto attn = block->register_module("attn", Params());
      t.in_w = attn->add("in_proj_weight", {3 * width, width});
      t.in_b = attn->add("in_proj_bias", {3 * width});
      auto out_proj = attn->register_module("out_proj", Params());
      t.out_w = out_proj->add("weight", {width, width});
      t.out_b = out_proj->add("bias", {width});
      auto ln_2 = block->register_module("ln_2", Params());
      t.ln_2_w = ln_2->add("weight", {width});
      t.ln_2_b = ln_2->add("bias", {width});
      auto mlp_module = block->register_module("mlp", Params());
      auto c_fc = mlp_module->register_module("c_fc", Params());
      t.fc_w = c_fc->add("weight", {mlp, width});
      t.fc_b = c_fc->add("bias", {mlp});
      auto c_proj = mlp_module->register_module("c_proj", Params());
      t.proj_w = c_proj->add("weight", {width, mlp});
      t.proj_b = c_proj->add("bias", {width});
      list->push_back(block);
      blocks_.push_back(t);
    }
  }

  // x: [B, N, width]. causal: token i attends to tokens 0..i only (the text tower).
  at::Tensor forward(at::Tensor x, bool causal) const {
    const int64_t batch = x.size(0), n = x.size(1), head_dim = width_ / heads_;
    at::Tensor mask;
#if TORCH_VERSION_MAJOR < 2
    if (causal) {
      mask = torch::full({n, n}, -std::numeric_limits<float>::infinity(),
                         torch::TensorOptions().dtype(at::kFloat).device(x.device()))
                 .triu(1);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
#endif
    for (const auto& t : blocks_) {
      auto h = layer_norm(x, t.ln_1_w, t.ln_1_b, eps_);
      auto qkv = linear(h, t.in_w, t.in_b, t.in_p.get()).view({batch, n, 3, heads_, head_dim});
      at::Tensor attended;  // [B, N, width] after the output projection (may be a permuted view)
#if TORCH_VERSION_MAJOR >= 2
      auto q = qkv.select(2, 0).transpose(1, 2);  // [B, H, N, D]
      auto k = qkv.select(2, 1).transpose(1, 2);
      auto v = qkv.select(2, 2).transpose(1, 2);
      auto o = at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
      attended =
          linear(o.transpose(1, 2).reshape({batch, n, width_}), t.out_w, t.out_b, t.out_p.get());
#else
      if (x.is_cpu() && x.scalar_type() == at::kFloat && cpu_gemm_onednn()) {
        const auto o = cpu_attention_onednn(qkv, scale, mask);  // [N, B, width]
        // The projection works row by row: it takes the sequence-major rows as they are.
        if (o.defined()) attended = linear(o, t.out_w, t.out_b, t.out_p.get()).permute({1, 0, 2});
      }
      if (!attended.defined()) attended = bmm_attention(qkv, scale, mask, t);
#endif
      auto sum = at::empty_like(x, at::MemoryFormat::Contiguous);  // the caller's x is not modified
      x = at::add_out(sum, x, attended);
      if (act_ == Activation::kQuickGelu && x.scalar_type() == at::kFloat) {
        // QuickGELU(u) = u·sigmoid(1.702·u) = silu(1.702·u) / 1.702. The factor 1.702 is folded
        // into ln_2 and c_fc's bias (u' = 1.702·u comes out of c_fc), 1/1.702 into the residual
        // add (and c_proj's bias times 1.702 to compensate): the MLP's largest tensor takes one
        // in-place silu_ pass instead of three passes and a temporary (docs/PERFORMANCE.md, "Where
        // the forward's time goes"). Only [width]- and [mlp]-sized vectors are scaled per call.
        h = layer_norm(x, t.ln_2_w * kQuickGeluScale, t.ln_2_b * kQuickGeluScale, eps_);
        auto u = linear(h, t.fc_w, t.fc_b * kQuickGeluScale, t.fc_p.get());
        at::silu_(u);
        x.add_(linear(u, t.proj_w, t.proj_b * kQuickGeluScale, t.proj_p.get()),
               1.0 / kQuickGeluScale);
      } else {
        h = layer_norm(x, t.ln_2_w, t.ln_2_b, eps_);
        x.add_(linear(activate(linear(h, t.fc_w, t.fc_b, t.fc_p.get()), act_), t.proj_w, t.proj_b,
                      t.proj_p.get()));
      }
    }
    return x;
  }

  // Packs the four projections of every block for `choice` (nullptr where it does not use them:
  // the per-call path stays).
  void pack(const DeviceChoice& choice) {
    for (auto& t : blocks_) {
      t.in_p = pack_for(choice, t.in_w);
      t.out_p = pack_for(choice, t.out_w);
      t.fc_p = pack_for(choice, t.fc_w);
      t.proj_p = pack_for(choice, t.proj_w);
    }
  }

 private:
#if TORCH_VERSION_MAJOR < 2
  // Attention with ATen's bmm (CUDA, fp16, or a CPU without oneDNN); returns [B, N, width] after
  // the output projection.
  at::Tensor bmm_attention(const at::Tensor& qkv, double scale, const at::Tensor& mask,
                           const BlockTensors& t) const {
    const int64_t batch = qkv.size(0), n = qkv.size(1), head_dim = width_ / heads_;
    // q, k, v as [B·H, N, D] in one copy; q scaled first, as nn.MultiheadAttention does.
    const int64_t pairs = batch * heads_;
    auto qkv3 = qkv.permute({2, 0, 3, 1, 4}).reshape({3, pairs, n, head_dim});
    auto q = qkv3[0].mul_(scale), k = qkv3[1], v = qkv3[2];
    auto o = at::empty({batch, heads_, n, head_dim}, q.options());
    auto o3 = o.view({pairs, n, head_dim});
    // A few (image, head) pairs at a time: the scores stay small (LongCLIP-L/336 has 16 × 577²
    // per image), so the allocator reuses one block.
    const int64_t chunk = std::max<int64_t>(1, (int64_t{16} << 20) / (n * n * 4));
    for (int64_t c0 = 0; c0 < pairs; c0 += chunk) {
      const int64_t c = std::min(chunk, pairs - c0);
      auto scores = at::bmm(q.narrow(0, c0, c), k.narrow(0, c0, c).transpose(1, 2));
      scores = scores.to(at::kFloat);
      if (mask.defined()) scores.add_(mask);
      auto out = o3.narrow(0, c0, c);
      at::bmm_out(out, at::softmax(scores, -1).to(v.scalar_type()), v.narrow(0, c0, c));
    }
    return linear(o.transpose(1, 2).reshape({batch, n, width_}), t.out_w, t.out_b, t.out_p.get());
  }
#endif

  int64_t width_, heads_;
  Activation act_;
  double eps_;
  std::vector<BlockTensors> blocks_;
};

// OpenAI's VisionTransformer (`visual.*`).
class VisionTowerImpl : public torch::nn::Module {
 public:
  explicit VisionTowerImpl(const ClipDims& d) : dims_(d) {
    const int64_t w = d.vision_width, grid = d.image_resolution / d.vision_patch;
    class_embedding_ = register_parameter("class_embedding", torch::zeros({w}), false);
    positional_embedding_ =
        register_parameter("positional_embedding", torch::zeros({grid * grid + 1, w}), false);
    proj_ = register_parameter("proj", torch::zeros({w, d.embed_dim}), false);
    conv1_ =
        register_module("conv1", Params())->add("weight", {w, 3, d.vision_patch, d.vision_patch});
    auto ln_pre = register_module("ln_pre", Params());
    ln_pre_w_ = ln_pre->add("weight", {w});
    ln_pre_b_ = ln_pre->add("bias", {w});
    transformer_ = register_module(
        "transformer",
        std::make_shared<TransformerImpl>(w, d.vision_layers, d.vision_heads, d.vision_mlp,
                                          d.activation, d.layer_norm_eps));
    auto ln_post = register_module("ln_post", Params());
    ln_post_w_ = ln_post->add("weight", {w});
    ln_post_b_ = ln_post->add("bias", {w});
  }

  at::Tensor forward(const at::Tensor& images) const {
    const int64_t batch = images.size(0), p = dims_.vision_patch;
    const int64_t grid = dims_.image_resolution / p, w = dims_.vision_width;
    at::Tensor x;
    if (images.is_cpu() && images.scalar_type() == at::kFloat) {
      // The patch embedding's stride equals its kernel: it is one GEMM of the patches (one copy
      // rearranges the pixels patch by patch) with the weight as a [W, 3·P·P] matrix, through the
      // same oneDNN GEMM as the projections: about 2x faster than ATen's NCHW convolution
      // (docs/PERFORMANCE.md, "Where the forward's time goes").
      const auto patches = images.reshape({batch, 3, grid, p, grid, p})
                               .permute({0, 2, 4, 1, 3, 5})
                               .reshape({batch, grid * grid, 3 * p * p});
      x = linear(patches, conv1_.view({w, 3 * p * p}), at::Tensor(),
                 conv1_p_.get());  // [B, grid², W]
    } else {
      x = at::conv2d(images, conv1_.to(images.scalar_type()), {}, {p});
      x = x.flatten(2).transpose(1, 2);  // [B, grid², W]
    }
    auto cls = class_embedding_.to(x.scalar_type()).view({1, 1, -1}).expand({batch, 1, -1});
    x = at::cat({cls, x}, 1) + positional_embedding_.to(x.scalar_type());
    x = layer_norm(x, ln_pre_w_, ln_pre_b_, dims_.layer_norm_eps);
    x = transformer_->forward(x, /*causal=*/false);
    x = layer_norm(x.select(1, 0), ln_post_w_, ln_post_b_, dims_.layer_norm_eps);
    return at::matmul(x, proj_.to(x.scalar_type()));
  }

  // Packs the patch embedding and the transformer's projections for `choice` (nullptr where it
  // does not use them). The final projection (one row per image) stays with at::matmul: it never
  // went through oneDNN, so there is no per-call reorder to save, and its results stay as they
  // were.
  void pack(const DeviceChoice& choice) {
    const int64_t w = dims_.vision_width, p = dims_.vision_patch;
    conv1_p_ = pack_for(choice, conv1_.view({w, 3 * p * p}));
    transformer_->pack(choice);
  }

 private:
  ClipDims dims_;
  at::Tensor class_embedding_, positional_embedding_, proj_, conv1_;
  Packed conv1_p_;
  at::Tensor ln_pre_w_, ln_pre_b_, ln_post_w_, ln_post_b_;
  std::shared_ptr<TransformerImpl> transformer_;
};

DeviceChoice resolve_device(const std::string& device, const std::string& precision) {
  DeviceChoice choice;
  if (device.empty() || device == "auto") {
    choice.device = torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  } else {
    try {
      choice.device = at::Device(device);
    } catch (const std::exception&) {
      throw ModelError("unknown device '" + device + "' (use auto, cpu, cuda or cuda:N)");
    }
    if (choice.device.is_cuda() && !torch::cuda::is_available())
      throw ModelError("device '" + device +
                       "' requested but CUDA is not available in this build/machine; use cpu");
    if (!choice.device.is_cuda() && !choice.device.is_cpu())
      throw ModelError("unsupported device '" + device + "' (use auto, cpu, cuda or cuda:N)");
  }
  if (precision.empty() || precision == "auto") {
    choice.dtype = choice.device.is_cuda() ? at::kHalf : at::kFloat;
  } else if (precision == "fp32") {
    choice.dtype = at::kFloat;
  } else if (precision == "bf16") {
    // Every op of the forward has a bf16 CPU kernel in LibTorch 1.13 (matmul, conv2d, bmm,
    // softmax, GELU, sigmoid; LayerNorm and the attention softmax run in fp32 anyway).
    choice.dtype = at::kBFloat16;
  } else if (precision == "fp16") {
    // LibTorch 1.13 has no fp16 CPU kernels for matmul, conv2d, softmax, GELU, sigmoid or
    // LayerNorm ("addmm_impl_cpu_ not implemented for 'Half'"): refused up front instead.
    if (!choice.device.is_cuda())
      throw ModelError(
          "precision fp16 is not available on the CPU (LibTorch has no fp16 CPU kernels for "
          "matmul, convolution, softmax and LayerNorm); use bf16 or fp32 on the CPU, or a CUDA "
          "device");
    choice.dtype = at::kHalf;
  } else {
    throw ModelError("unknown precision '" + precision + "' (use auto, fp32, fp16 or bf16)");
  }
  return choice;
}

const char* precision_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "fp32";
    case at::kHalf:
      return "fp16";
    case at::kBFloat16:
      return "bf16";
    default:
      return "?";
  }
}

ClipModelImpl::ClipModelImpl(const ClipDims& dims) : dims_(dims) {
  if (dims.vision_patch <= 0 || dims.image_resolution % dims.vision_patch != 0 ||
      dims.vision_heads <= 0 || dims.vision_width % dims.vision_heads != 0 ||
      dims.text_heads <= 0 || dims.text_width % dims.text_heads != 0 || dims.context_length <= 0)
    throw ModelError("inconsistent CLIP dimensions (patch/resolution/heads/context)");
  // Registration order follows clip.model.CLIP.state_dict().
  positional_embedding_ = register_parameter(
      "positional_embedding", torch::zeros({dims.context_length, dims.text_width}), false);
  if (dims.long_context)
    positional_embedding_res_ = register_parameter(
        "positional_embedding_res", torch::zeros({dims.context_length, dims.text_width}), false);
  text_projection_ =
      register_parameter("text_projection", torch::zeros({dims.text_width, dims.embed_dim}), false);
  logit_scale_ = register_parameter("logit_scale", torch::zeros({}), false);
  visual_ = register_module("visual", std::make_shared<VisionTowerImpl>(dims));
  transformer_ = register_module(
      "transformer",
      std::make_shared<TransformerImpl>(dims.text_width, dims.text_layers, dims.text_heads,
                                        dims.text_mlp, dims.activation, dims.layer_norm_eps));
  token_embedding_ = register_module("token_embedding", Params())
                         ->add("weight", {dims.vocab_size, dims.text_width});
  auto ln_final = register_module("ln_final", Params());
  ln_final_weight_ = ln_final->add("weight", {dims.text_width});
  ln_final_bias_ = ln_final->add("bias", {dims.text_width});
}

void ClipModelImpl::load_weights(const StateDict& openai, const std::string& source) {
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters(/*recurse=*/true)) {
    auto it = openai.find(item.key());
    if (it == openai.end())
      throw ModelError("missing tensor '" + item.key() + "'" +
                       (source.empty() ? "" : " in " + source));
    auto& param = item.value();
    if (it->second.numel() != param.numel())
      throw ModelError("tensor '" + item.key() + "'" + (source.empty() ? "" : " in " + source) +
                       " has the wrong size");
    // The parameter takes over the loaded memory (a view of the file buffer when the checkpoint
    // is fp32): no copy, no page faults on fresh memory.
    param.set_(host_contiguous_float(it->second).view(param.sizes()));
  }
  // The packed copies of the old weights are stale; before place() nothing is packed yet (the
  // loader loads, then places: one packing).
  if (placed_) pack_weights(placement_);
}

void ClipModelImpl::place(const DeviceChoice& choice) {
  to(choice.device, choice.dtype);
  placement_ = choice;
  placed_ = true;
  pack_weights(choice);
}

void ClipModelImpl::pack_weights(const DeviceChoice& choice) {
  visual_->pack(choice);
  transformer_->pack(choice);
}

double ClipModelImpl::logit_scale() const { return std::exp(logit_scale_.item<double>()); }

at::Tensor ClipModelImpl::encode_image(const at::Tensor& images) {
  const int64_t r = dims_.image_resolution;
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != r || images.size(3) != r ||
      !at::isFloatingType(images.scalar_type()))
    throw ModelError("encode_image expects float images [B, 3, " + std::to_string(r) + ", " +
                     std::to_string(r) + "], got " + std::string(images.toString()) +
                     c10::str(images.sizes()));
  const int64_t grid = r / dims_.vision_patch;
  const int64_t step = micro_batch(grid * grid + 1, dims_.vision_width, dims_.vision_mlp);
  return in_micro_batches(images.size(0), step, [&](int64_t b0, int64_t n) {
    at::Tensor features;
    {
      c10::InferenceMode guard;
      auto x =
          images.narrow(0, b0, n).to(placement_.device, placement_.dtype, /*non_blocking=*/true);
      features = visual_->forward(x);
    }
    // Copied outside inference mode so that callers may modify the result in place.
    return features.to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  });
}

int64_t ClipModelImpl::micro_batch(int64_t tokens, int64_t width, int64_t mlp) const {
  if (!placement_.device.is_cpu()) return std::numeric_limits<int64_t>::max();
  const int64_t row_bytes = std::max(mlp, 3 * width) * 4;
  return std::max<int64_t>(1, kActivationBudget / (row_bytes * std::max<int64_t>(tokens, 1)));
}

at::Tensor ClipModelImpl::pooled_positions(const at::Tensor& ids) const {
  auto cpu = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t batch = cpu.size(0), len = cpu.size(1);
  auto out = torch::empty({batch}, torch::kLong);
  const int64_t* data = cpu.data_ptr<int64_t>();
  int64_t* pos = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = data + b * len;
    int64_t found = -1;
    if (dims_.eos_token_id >= 0) {
      for (int64_t i = 0; i < len && found < 0; ++i)
        if (row[i] == dims_.eos_token_id) found = i;
    }
    if (found < 0) found = std::max_element(row, row + len) - row;  // first largest
    pos[b] = found;
  }
  return out;
}

at::Tensor ClipModelImpl::encode_text(const at::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(0) < 1 || ids.size(1) < 1 || ids.size(1) > dims_.context_length ||
      at::isFloatingType(ids.scalar_type()))
    throw ModelError("encode_text expects integer ids [B, L] with 1 <= L <= " +
                     std::to_string(dims_.context_length) + ", got " + c10::str(ids.sizes()));
  const auto ids_cpu = ids.to(at::kCPU, at::kLong).contiguous();
  {
    const auto lo = ids_cpu.min().item<int64_t>(), hi = ids_cpu.max().item<int64_t>();
    if (lo < 0 || hi >= dims_.vocab_size)
      throw ModelError("encode_text: token id out of range [0, " +
                       std::to_string(dims_.vocab_size) + ")");
  }
  const auto pos = pooled_positions(ids_cpu);
  const int64_t step = micro_batch(pos.max().item<int64_t>() + 1, dims_.text_width, dims_.text_mlp);
  return in_micro_batches(ids_cpu.size(0), step, [&](int64_t b0, int64_t n) {
    return encode_text_rows(ids_cpu.narrow(0, b0, n), pos.narrow(0, b0, n));
  });
}

at::Tensor ClipModelImpl::encode_text_rows(const at::Tensor& ids_cpu, const at::Tensor& pos) {
  // The text tower is causal: positions after the last pooled one cannot change any result.
  const int64_t len = pos.max().item<int64_t>() + 1;
  at::Tensor features;
  {
    c10::InferenceMode guard;
    const auto& dev = placement_.device;
    const auto dtype = placement_.dtype;
    auto cut = ids_cpu.narrow(1, 0, len).to(dev);
    auto x = token_embedding_.index_select(0, cut.reshape({-1}))
                 .view({cut.size(0), len, dims_.text_width})
                 .to(dtype);
    at::Tensor pe;
    if (dims_.long_context && len > ClipDims::kLongClipKeptPositions) {
      const int64_t keep = ClipDims::kLongClipKeptPositions;
      pe = at::cat({positional_embedding_.narrow(0, 0, keep),
                    positional_embedding_res_.narrow(0, keep, len - keep)},
                   0);
    } else {
      pe = positional_embedding_.narrow(0, 0, len);
    }
    x = x + pe.to(dtype);
    x = transformer_->forward(x, /*causal=*/true);
    auto rows = torch::arange(cut.size(0), torch::TensorOptions().dtype(at::kLong).device(dev));
    x = x.index({rows, pos.to(dev)});
    x = layer_norm(x, ln_final_weight_, ln_final_bias_, dims_.layer_norm_eps);
    features = at::matmul(x, text_projection_.to(dtype));
  }
  return features.to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace clipshard
