// PackedLinear on oneDNN's matmul. The weight's layout is oneDNN's choice (format_tag::any) for
// kPackingRows rows, made once per (K, N) for the process; a call with another M builds its
// matmul with that fixed layout, and each (M, K, N, bias) primitive is kept for the process (the
// twelve layers of a tower share theirs).
#include "models/clip/packed_linear.h"

#include <ATen/ATen.h>

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "models/weights/host_memory.h"
#include "shard/check.h"

namespace clipshard {
namespace {

using dnnl::memory;

// The weights' layout is chosen for this many rows: a ViT-B/32 image micro-batch (32 images × 50
// tokens = 1600) and a text batch (32 × ~25 tokens) are of this order. oneDNN's f32 kernels
// block the weight by K and N only, so other M run with the same layout (tests/models/clip/
// packed_linear_test.cpp covers M = 1 to 1600).
constexpr memory::dim kPackingRows = 1024;

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

memory::desc row_major(memory::dim rows, memory::dim cols) {
  return memory::desc({rows, cols}, memory::data_type::f32, memory::format_tag::ab);
}

struct Matmul {
  dnnl::matmul primitive;
  memory::desc weights;     // the weights' layout it was made with (oneDNN's choice for `any`)
  memory::desc scratchpad;  // size 0: none needed
};

// oneDNN's matmul for src [m, k] row-major, the packed weights, dst [m, n] row-major; nullopt
// when oneDNN has no kernel for it. The scratchpad is the caller's (allocated per call), so that
// one primitive may run on several threads at once.
std::optional<Matmul> make_matmul(memory::dim m, memory::dim k, memory::dim n,
                                  const memory::desc& weights, bool bias) {
  try {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto desc =
        bias ? dnnl::matmul::desc(row_major(m, k), weights, row_major(1, n), row_major(m, n))
             : dnnl::matmul::desc(row_major(m, k), weights, row_major(m, n));
    const dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
    return Matmul{dnnl::matmul(pd), pd.weights_desc(), pd.scratchpad_desc()};
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

// The process's packed layouts and primitives.
class MatmulRegistry {
 public:
  static MatmulRegistry& get() {
    static MatmulRegistry registry;
    return registry;
  }

  // oneDNN's layout for a [K, N] weight, the same for every weight of that shape; nullopt when
  // oneDNN cannot make a matmul for it.
  std::optional<memory::desc> layout(memory::dim k, memory::dim n) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = layouts_.find({k, n});
    if (it == layouts_.end()) {
      std::optional<memory::desc> chosen;
      const memory::desc any({k, n}, memory::data_type::f32, memory::format_tag::any);
      if (auto mm = make_matmul(kPackingRows, k, n, any, /*bias=*/true)) chosen = mm->weights;
      it = layouts_.emplace(std::make_pair(k, n), chosen).first;
    }
    return it->second;
  }

  // The matmul for M rows with the packed layout of (K, N); nullopt when oneDNN has none.
  std::optional<Matmul> matmul(memory::dim m, memory::dim k, memory::dim n,
                               const memory::desc& weights, bool bias) {
    const Key key{m, k, n, bias};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = matmuls_.find(key); it != matmuls_.end()) return it->second;
    }
    // Built outside the lock (tens of microseconds; two threads may both build one).
    auto made = make_matmul(m, k, n, weights, bias);
    std::lock_guard<std::mutex> lock(mutex_);
    if (matmuls_.size() < kMaxKeptPrimitives) matmuls_.emplace(key, made);
    return made;
  }

 private:
  using Key = std::tuple<memory::dim, memory::dim, memory::dim, bool>;
  std::mutex mutex_;
  std::map<std::pair<memory::dim, memory::dim>, std::optional<memory::desc>> layouts_;
  std::map<Key, std::optional<Matmul>> matmuls_;
};

class OneDnnLinear final : public PackedLinear {
 public:
  OneDnnLinear(int64_t k, int64_t n, memory::desc layout, at::Tensor packed)
      : k_(k), n_(n), layout_(std::move(layout)), packed_(std::move(packed)) {}

  at::Tensor apply(const at::Tensor& x, const at::Tensor& bias) const override {
    CLIPSHARD_CHECK(x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 &&
                        x.size(1) == k_ && x.size(0) >= 1 && x.is_contiguous(),
                    "PackedLinear [", n_, ", ", k_, "] applied to ", x.toString(), x.sizes());
    const bool has_bias = bias.defined();
    CLIPSHARD_CHECK(
        !has_bias || (bias.is_cpu() && bias.scalar_type() == at::kFloat && bias.numel() == n_),
        "PackedLinear [", n_, ", ", k_, "] with bias ", bias.toString(), bias.sizes());
    const int64_t m = x.size(0);
    const auto mm = MatmulRegistry::get().matmul(m, k_, n_, layout_, has_bias);
    if (!mm) return {};
    auto y = at::empty({m, n_}, x.options());
    const auto& engine = cpu_engine();
    // oneDNN takes non-const pointers; src, weights and bias are only read.
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, memory(row_major(m, k_), engine, const_cast<float*>(x.data_ptr<float>()))},
        {DNNL_ARG_WEIGHTS, memory(layout_, engine, const_cast<void*>(packed_.data_ptr()))},
        {DNNL_ARG_DST, memory(row_major(m, n_), engine, y.data_ptr<float>())}};
    at::Tensor b;
    if (has_bias) {
      b = bias.contiguous();
      args.emplace(DNNL_ARG_BIAS,
                   memory(row_major(1, n_), engine, const_cast<float*>(b.data_ptr<float>())));
    }
    at::Tensor scratchpad;
    if (const size_t bytes = mm->scratchpad.get_size(); bytes > 0) {
      scratchpad = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(mm->scratchpad, engine, scratchpad.data_ptr()));
    }
    auto& stream = cpu_stream();
    mm->primitive.execute(stream, args);
    stream.wait();
    return y;
  }

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  size_t packed_bytes() const override { return layout_.get_size(); }

 private:
  int64_t k_, n_;
  memory::desc layout_;
  at::Tensor packed_;  // bytes in oneDNN's layout (layout_.get_size())
};

}  // namespace

bool packed_linear_available() { return true; }

std::shared_ptr<const PackedLinear> PackedLinear::pack(const at::Tensor& weight) {
  if (!weight.defined() || !weight.is_cpu() || weight.scalar_type() != at::kFloat ||
      weight.dim() != 2 || weight.numel() == 0)
    return nullptr;
  const int64_t n = weight.size(0), k = weight.size(1);
  const auto layout = MatmulRegistry::get().layout(k, n);
  if (!layout) return nullptr;
  try {
    const auto& engine = cpu_engine();
    // oneDNN's weights are [K, N]: Wᵀ, i.e. W's strides swapped.
    const memory::desc plain({k, n}, memory::data_type::f32,
                             memory::dims{weight.stride(1), weight.stride(0)});
    memory source(plain, engine, const_cast<float*>(weight.data_ptr<float>()));
    const int64_t floats = static_cast<int64_t>((layout->get_size() + 3) / 4);
    auto packed = host_empty({floats}, at::kFloat);
    memory target(*layout, engine, packed.data_ptr());
    auto& stream = cpu_stream();
    dnnl::reorder(source, target).execute(stream, source, target);
    stream.wait();
    return std::make_shared<OneDnnLinear>(k, n, *layout, std::move(packed));
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

}  // namespace clipshard
