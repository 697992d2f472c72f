// PackedLinear on oneDNN's 1x1 convolution over NHWC views: x [M, K] row-major is an image of M
// pixels with K channels, y [M, N] the NHWC result. That is what ATen's mkldnn_convolution runs
// for these projections (brgconv_1x1 on AVX-512), with the same layout choice (oneDNN's, for
// each M), minus the weight reorder ATen does on every call: here the weight is reordered once
// per layout and kept. oneDNN's choice of layout varies with M (the N block is 32, 48 or 64), and
// brgconv_1x1 has no kernel for many M with another M's layout (its reference kernel is ~1000x
// slower), so one packed copy per layout in use (1–3 per weight). oneDNN's matmul primitive would
// take one layout for every M but was up to 20 % slower per call (docs/PERFORMANCE.md, "Prepacked
// projection weights"). Each (M, K, N, bias) primitive is kept for the process (the twelve layers
// of a tower share theirs).
#include "models/clip/packed_linear.h"

#include <ATen/ATen.h>

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "models/weights/host_memory.h"
#include "shard/check.h"

namespace clipshard {
namespace {

using dnnl::memory;

// pack() reorders the weight at once for this many rows (a ViT-B/32 image micro-batch is 1600, a
// text batch 32 × ~25 = 800; both take the layout oneDNN chooses here): placing the model does the
// work, not the first batch.
constexpr int64_t kPackingRows = 1024;

// Packed copies kept per weight: oneDNN's f32 brgconv_1x1 blocks N by 32, 48 or 64. A further
// layout (none seen) runs ATen's per-call path.
constexpr size_t kMaxLayoutsPerWeight = 3;

// Primitives kept per process beyond which new shapes are built per call (oneDNN's own primitive
// cache still serves them): text batches bring a new M per caption length and batch size.
constexpr size_t kMaxKeptPrimitives = 512;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A stream per thread: the forward may run on several threads (a CPU stream is cheap to make).
dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// [rows, cols] row-major as an NHWC image of `rows` pixels (H) with `cols` channels.
memory::desc nhwc(memory::dim rows, memory::dim cols) {
  return memory::desc({1, cols, rows, 1}, memory::data_type::f32, memory::format_tag::nhwc);
}

memory::desc bias_desc(memory::dim n) {
  return memory::desc({n}, memory::data_type::f32, memory::format_tag::a);
}

// A weight [N, K] as the convolution's [N, K, 1, 1] (OIHW).
memory::dims weight_dims(memory::dim k, memory::dim n) { return {n, k, 1, 1}; }

struct Conv1x1 {
  dnnl::convolution_forward primitive;
  memory::desc weights;     // the weights' layout it was made with (oneDNN's choice for `any`)
  memory::desc scratchpad;  // size 0: none needed
};

// oneDNN's 1x1 convolution for src [m, k] row-major, `weights`, dst [m, n] row-major; nullopt
// when oneDNN has no kernel for it. The scratchpad is the caller's (allocated per call), so that
// one primitive may run on several threads at once.
std::optional<Conv1x1> make_conv(memory::dim m, memory::dim k, memory::dim n,
                                 const memory::desc& weights, bool bias) {
  try {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::dims strides{1, 1}, padding{0, 0};
    const auto kind = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    const auto desc =
        bias ? dnnl::convolution_forward::desc(kind, alg, nhwc(m, k), weights, bias_desc(n),
                                               nhwc(m, n), strides, padding, padding)
             : dnnl::convolution_forward::desc(kind, alg, nhwc(m, k), weights, nhwc(m, n), strides,
                                               padding, padding);
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
    return Conv1x1{dnnl::convolution_forward(pd), pd.weights_desc(), pd.scratchpad_desc()};
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

// The process's primitives, one per (M, K, N, bias) (the twelve layers of a tower share theirs).
class ConvRegistry {
 public:
  static ConvRegistry& get() {
    cpu_engine();  // constructed first, so destroyed after the primitives that use it
    static ConvRegistry registry;
    return registry;
  }

  // The convolution for M rows with the weights' layout oneDNN prefers for it; nullopt when oneDNN
  // has none.
  std::optional<Conv1x1> conv(memory::dim m, memory::dim k, memory::dim n, bool bias) {
    const Key key{m, k, n, bias};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = convs_.find(key); it != convs_.end()) return it->second;
    }
    // Built outside the lock (tens of microseconds; two threads may both build one).
    const memory::desc any(weight_dims(k, n), memory::data_type::f32, memory::format_tag::any);
    auto made = make_conv(m, k, n, any, bias);
    std::lock_guard<std::mutex> lock(mutex_);
    if (convs_.size() < kMaxKeptPrimitives) convs_.emplace(key, made);
    return made;
  }

 private:
  using Key = std::tuple<memory::dim, memory::dim, memory::dim, bool>;
  std::mutex mutex_;
  std::map<Key, std::optional<Conv1x1>> convs_;
};

class OneDnnLinear final : public PackedLinear {
 public:
  explicit OneDnnLinear(at::Tensor weight)
      : weight_(std::move(weight)), k_(weight_.size(1)), n_(weight_.size(0)) {}

  // The weight in `layout`, reordered on first use; undefined when kMaxLayoutsPerWeight are taken.
  // Throws dnnl::error when the reorder fails.
  at::Tensor packed(const memory::desc& layout) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [desc, data] : packs_)
      if (desc == layout) return data;
    if (packs_.size() >= kMaxLayoutsPerWeight) return {};
    const auto& engine = cpu_engine();
    // The convolution's weights are W as [N, K, 1, 1], with W's own strides.
    const memory::desc plain(weight_dims(k_, n_), memory::data_type::f32,
                             memory::dims{weight_.stride(0), weight_.stride(1), 1, 1});
    memory source(plain, engine, const_cast<float*>(weight_.data_ptr<float>()));
    auto data = host_empty({static_cast<int64_t>((layout.get_size() + 3) / 4)}, at::kFloat);
    memory target(layout, engine, data.data_ptr());
    auto& stream = cpu_stream();
    dnnl::reorder(source, target).execute(stream, source, target);
    stream.wait();
    packs_.emplace_back(layout, data);
    return data;
  }

  at::Tensor apply(const at::Tensor& x, const at::Tensor& bias) const override {
    CLIPSHARD_CHECK(x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 &&
                        x.size(1) == k_ && x.size(0) >= 1 && x.is_contiguous(),
                    "PackedLinear [", n_, ", ", k_, "] applied to ", x.toString(), x.sizes());
    const bool has_bias = bias.defined();
    CLIPSHARD_CHECK(
        !has_bias || (bias.is_cpu() && bias.scalar_type() == at::kFloat && bias.numel() == n_),
        "PackedLinear [", n_, ", ", k_, "] with bias ", bias.toString(), bias.sizes());
    const int64_t m = x.size(0);
    const auto conv = ConvRegistry::get().conv(m, k_, n_, has_bias);
    if (!conv) return {};
    at::Tensor weights;
    try {
      weights = packed(conv->weights);
    } catch (const dnnl::error&) {
      return {};
    }
    if (!weights.defined()) return {};
    auto y = at::empty({m, n_}, x.options());
    const auto& engine = cpu_engine();
    // oneDNN takes non-const pointers; src, weights and bias are only read.
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(nhwc(m, k_), engine, const_cast<float*>(x.data_ptr<float>()))},
        {DNNL_ARG_WEIGHTS, memory(conv->weights, engine, weights.data_ptr())},
        {DNNL_ARG_DST, memory(nhwc(m, n_), engine, y.data_ptr<float>())}};
    at::Tensor b;
    if (has_bias) {
      b = bias.contiguous();
      args.emplace(DNNL_ARG_BIAS,
                   memory(bias_desc(n_), engine, const_cast<float*>(b.data_ptr<float>())));
    }
    at::Tensor scratchpad;
    if (const size_t bytes = conv->scratchpad.get_size(); bytes > 0) {
      scratchpad = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(conv->scratchpad, engine, scratchpad.data_ptr()));
    }
    auto& stream = cpu_stream();
    conv->primitive.execute(stream, args);
    stream.wait();
    return y;
  }

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  size_t packed_bytes() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t bytes = 0;
    for (const auto& pack : packs_) bytes += pack.first.get_size();
    return bytes;
  }

 private:
  const at::Tensor weight_;  // the caller's, read when a new layout is needed
  const int64_t k_, n_;
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<memory::desc, at::Tensor>> packs_;  // at most kMaxLayoutsPerWeight
};

}  // namespace

bool packed_linear_available() { return true; }

std::shared_ptr<const PackedLinear> PackedLinear::pack(const at::Tensor& weight) {
  if (!weight.defined() || !weight.is_cpu() || weight.scalar_type() != at::kFloat ||
      weight.dim() != 2 || weight.numel() == 0)
    return nullptr;
  auto linear = std::make_shared<OneDnnLinear>(weight);
  const auto conv = ConvRegistry::get().conv(kPackingRows, weight.size(1), weight.size(0), true);
  if (!conv) return nullptr;
  try {
    if (!linear->packed(conv->weights).defined()) return nullptr;
  } catch (const dnnl::error&) {
    return nullptr;
  }
  return linear;
}

}  // namespace clipshard
