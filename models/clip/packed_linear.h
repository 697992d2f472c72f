// fp32 CPU projections whose weight is reordered once into oneDNN's preferred (blocked) layout.
// ATen 1.13 reaches oneDNN's GEMM only through mkldnn_convolution, which reorders the plain weight
// into that layout on every call (~8 % of a ViT-B/32 forward: docs/PERFORMANCE.md, "Prepacked
// projection weights"). This calls oneDNN's own matmul, on the same libdnnl that LibTorch links
// (same kernels, same OpenMP threads). Built only with CLIPSHARD_ONEDNN (cmake/Dependencies.cmake:
// never beside a LibTorch that carries its own copy of oneDNN); without it, packed_linear_none.cpp
// stands in and pack() always returns nullptr.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace clipshard {

// Whether this build can pack weights at all (false: pack() always returns nullptr).
bool packed_linear_available();

// y = x·Wᵀ + b for one fixed weight W [N, K]; immutable once packed, so apply() may be called from
// several threads at once.
class PackedLinear {
 public:
  // Reorders `weight` (fp32, CPU, [N, K], any strides: a transposed view works) into oneDNN's
  // layout; the packed copy does not follow later changes of `weight`. Returns nullptr when this
  // build has no oneDNN, `weight` is not such a tensor, or oneDNN cannot pack it: the caller keeps
  // its own path then.
  static std::shared_ptr<const PackedLinear> pack(const at::Tensor& weight);

  virtual ~PackedLinear() = default;

  // For x fp32 CPU [M, K] contiguous (M >= 1) and bias undefined or fp32 CPU [N]: returns
  // x·Wᵀ + bias, fp32 [M, N] contiguous. Returns an undefined tensor when oneDNN has no kernel for
  // this M with the packed layout (the caller falls back to its plain-weight path for that call).
  // Throws std::logic_error (CLIPSHARD_CHECK) when x or bias break the contract.
  virtual at::Tensor apply(const at::Tensor& x, const at::Tensor& bias) const = 0;

  virtual int64_t in_features() const = 0;   // K
  virtual int64_t out_features() const = 0;  // N
  // Bytes of the packed weight (oneDNN's blocked layout may pad N and K).
  virtual size_t packed_bytes() const = 0;
};

}  // namespace clipshard
