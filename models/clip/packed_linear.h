// fp32 CPU projections whose weight is reordered once into oneDNN's blocked layout and kept.
// ATen 1.13 reaches oneDNN's GEMM only through mkldnn_convolution (a 1x1 convolution over an NHWC
// view), which reorders the plain weight into that layout on every call (docs/PERFORMANCE.md,
// "Prepacked projection weights"). This runs the same convolution through oneDNN's own API, on
// the libdnnl that LibTorch links (same kernels, same layouts, same OpenMP threads: the results
// are ATen's bit for bit). Built only with CLIPSHARD_ONEDNN (cmake/Dependencies.cmake:
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

// y = x·Wᵀ + b for one fixed weight W [N, K]. apply() may be called from several threads at once.
class PackedLinear {
 public:
  // Reorders `weight` (fp32, CPU, [N, K], any strides: a transposed view works) into oneDNN's
  // layout. oneDNN's layout depends on the row count M as well, so a call whose M takes another
  // layout reorders `weight` again, once, and keeps that copy too (1–3 copies per weight): the
  // object keeps a reference to `weight`, which must not be modified afterwards (model weights
  // never are). Returns nullptr when this build has no oneDNN, `weight` is not such a tensor, or
  // oneDNN cannot pack it: the caller keeps its own path then.
  static std::shared_ptr<const PackedLinear> pack(const at::Tensor& weight);

  virtual ~PackedLinear() = default;

  // For x fp32 CPU [M, K] contiguous (M >= 1) and bias undefined or fp32 CPU [N]: returns
  // x·Wᵀ + bias, fp32 [M, N] contiguous. Returns an undefined tensor when oneDNN has no kernel for
  // this M with the packed layout (the caller falls back to its plain-weight path for that call).
  // Throws std::logic_error (CLIPSHARD_CHECK) when x or bias break the contract.
  virtual at::Tensor apply(const at::Tensor& x, const at::Tensor& bias) const = 0;

  virtual int64_t in_features() const = 0;   // K
  virtual int64_t out_features() const = 0;  // N
  // Bytes of the packed copies made so far (oneDNN's blocked layouts may pad N and K).
  virtual size_t packed_bytes() const = 0;
};

}  // namespace clipshard
