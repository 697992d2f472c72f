// PackedLinear (oneDNN matmul on a weight packed once) against at::linear: the projection shapes of
// the CLIP towers, row counts other than the one the layout was chosen for, with and without bias.
#include "models/clip/packed_linear.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <tuple>
#include <vector>

namespace clipshard {
namespace {

#define SKIP_WITHOUT_ONEDNN() \
  if (!packed_linear_available()) GTEST_SKIP() << "built without CLIPSHARD_ONEDNN"

// max |y - ref| / max |ref|, with the reference computed in fp64.
double relative_error(const at::Tensor& y, const at::Tensor& x, const at::Tensor& w,
                      const at::Tensor& b) {
  const auto ref = at::linear(x.to(at::kDouble), w.to(at::kDouble),
                              b.defined() ? b.to(at::kDouble) : at::Tensor());
  return (y.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

TEST(PackedLinear, MatchesAtLinearOnTheTowersShapes) {
  SKIP_WITHOUT_ONEDNN();
  // (K, N): the text tower's (512 → 2048 → 512), the image tower's (768 → 3072 → 768, qkv 2304),
  // ViT-L's MLP (1024 → 4096 is the same kernel family; 768 × 768 stands for the out projection).
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {512, 2048}, {2048, 512}, {768, 3072}, {3072, 768}, {768, 2304}, {768, 768}, {512, 512}};
  // M: one row, odd, one image's tokens, the packing's own row count, a ViT-B/32 micro-batch.
  const std::vector<int64_t> rows = {1, 7, 50, 1024, 1600};
  torch::manual_seed(7);
  for (const auto& [k, n] : shapes) {
    const auto w = torch::randn({n, k}) * 0.05;
    const auto b = torch::randn({n});
    const auto packed = PackedLinear::pack(w);
    ASSERT_TRUE(packed) << k << " -> " << n;
    EXPECT_EQ(packed->in_features(), k);
    EXPECT_EQ(packed->out_features(), n);
    EXPECT_GE(packed->packed_bytes(), static_cast<size_t>(n * k * 4));
    for (const int64_t m : rows) {
      const auto x = torch::randn({m, k});
      for (const bool with_bias : {false, true}) {
        const auto bias = with_bias ? b : at::Tensor();
        const auto y = packed->apply(x, bias);
        ASSERT_TRUE(y.defined()) << "M " << m << ", " << k << " -> " << n;
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{m, n}));
        EXPECT_TRUE(y.is_contiguous());
        EXPECT_LT(relative_error(y, x, w, bias), 1e-5)
            << "M " << m << ", " << k << " -> " << n << (with_bias ? ", bias" : "");
        // ATen's own fp32 result agrees to the same order (the packing changes rounding only).
        EXPECT_LT(
            (y - at::linear(x, w, bias)).abs().max().item<double>() / y.abs().max().item<double>(),
            1e-5);
      }
    }
  }
}

// ATen's per-call path for the same product (clip_model.cpp's linear() without packing): a 1x1
// mkldnn_convolution over the NHWC view of x.
at::Tensor aten_conv_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  const auto image = x.as_strided({1, k, m, 1}, {m * k, 1, k, k});
  const auto y = at::mkldnn_convolution(image, w.view({n, k, 1, 1}), b, {0, 0}, {1, 1}, {1, 1}, 1);
  return y.permute({0, 2, 3, 1}).reshape({m, n});
}

TEST(PackedLinear, SameBitsAsAtensPerCallConvolution) {
  SKIP_WITHOUT_ONEDNN();
  if (!at::hasMKLDNN()) GTEST_SKIP() << "LibTorch without oneDNN";
  // The same kernel on the same layout: switching the forward to packed weights changes no result
  // (M = 1 is not compared: the per-call path hands it to at::linear).
  torch::manual_seed(11);
  for (const auto& [k, n] : std::vector<std::pair<int64_t, int64_t>>{
           {768, 2304}, {768, 3072}, {3072, 768}, {512, 2048}, {2048, 512}}) {
    const auto w = torch::randn({n, k}) * 0.05;
    const auto b = torch::randn({n});
    const auto packed = PackedLinear::pack(w);
    ASSERT_TRUE(packed);
    for (const int64_t m : {2, 7, 50, 83, 300, 800, 1023, 1600, 2464}) {
      const auto x = torch::randn({m, k});
      const auto y = packed->apply(x, b);
      ASSERT_TRUE(y.defined());
      EXPECT_TRUE(at::equal(y, aten_conv_linear(x, w, b))) << "M " << m << ", " << k << " -> " << n;
    }
  }
}

TEST(PackedLinear, PacksATransposedView) {
  SKIP_WITHOUT_ONEDNN();
  // The towers' final projections are stored [K, N] and packed as their transpose.
  torch::manual_seed(3);
  const auto w_kn = torch::randn({768, 512});
  const auto packed = PackedLinear::pack(w_kn.t());
  ASSERT_TRUE(packed);
  EXPECT_EQ(packed->in_features(), 768);
  EXPECT_EQ(packed->out_features(), 512);
  const auto x = torch::randn({33, 768});
  const auto y = packed->apply(x, at::Tensor());
  ASSERT_TRUE(y.defined());
  EXPECT_LT(relative_error(y, x, w_kn.t(), at::Tensor()), 1e-5);
}

TEST(PackedLinear, PacksOnceFollowingLayoutsAreKept) {
  SKIP_WITHOUT_ONEDNN();
  // 512 -> 2048: oneDNN blocks N by 64 for 1024 rows and by 48 for 7 (two layouts, two copies).
  torch::manual_seed(13);
  const auto w = torch::randn({2048, 512});
  const auto packed = PackedLinear::pack(w);
  ASSERT_TRUE(packed);
  const size_t one = packed->packed_bytes();
  EXPECT_GE(one, size_t{2048 * 512 * 4});
  const auto x = torch::randn({1024, 512});
  const auto first = packed->apply(x, at::Tensor());
  EXPECT_EQ(packed->packed_bytes(), one);  // the layout packed up front
  for (const int64_t m : {7, 50, 800, 1600}) packed->apply(torch::randn({m, 512}), at::Tensor());
  const size_t all = packed->packed_bytes();
  EXPECT_LE(all, 3 * one + 3 * 4096);  // at most kMaxLayoutsPerWeight copies
  for (const int64_t m : {7, 50, 800, 1600}) packed->apply(torch::randn({m, 512}), at::Tensor());
  EXPECT_EQ(packed->packed_bytes(), all);  // nothing repacked
  EXPECT_TRUE(at::equal(packed->apply(x, at::Tensor()), first));
}

TEST(PackedLinear, SameResultWhateverTheThreadCount) {
  SKIP_WITHOUT_ONEDNN();
  // Outputs are byte-identical across rank counts and thread counts (docs/PERFORMANCE.md): the
  // packed GEMM must not split its reduction differently with more threads.
  torch::manual_seed(5);
  const auto w = torch::randn({3072, 768});
  const auto b = torch::randn({3072});
  const auto packed = PackedLinear::pack(w);
  ASSERT_TRUE(packed);
  const int saved = at::get_num_threads();
  for (const int64_t m : {1, 50, 1600}) {
    const auto x = torch::randn({m, 768});
    at::set_num_threads(1);
    const auto one = packed->apply(x, b);
    at::set_num_threads(3);
    const auto three = packed->apply(x, b);
    EXPECT_TRUE(at::equal(one, three)) << "M " << m;
  }
  at::set_num_threads(saved);
}

TEST(PackedLinear, RefusesWhatItCannotPack) {
  EXPECT_FALSE(PackedLinear::pack(at::Tensor()));
  EXPECT_FALSE(PackedLinear::pack(torch::randn({8, 4}).to(at::kBFloat16)));
  EXPECT_FALSE(PackedLinear::pack(torch::randn({8})));
}

TEST(PackedLinear, ChecksItsInputs) {
  SKIP_WITHOUT_ONEDNN();
  const auto packed = PackedLinear::pack(torch::randn({8, 4}));
  ASSERT_TRUE(packed);
  EXPECT_THROW(packed->apply(torch::randn({3, 5}), at::Tensor()), std::logic_error);
  EXPECT_THROW(packed->apply(torch::randn({4, 3}).t(), at::Tensor()), std::logic_error);
  EXPECT_THROW(packed->apply(torch::randn({3, 4}), torch::randn({7})), std::logic_error);
  EXPECT_THROW(packed->apply(torch::randn({3, 4}).to(at::kDouble), at::Tensor()), std::logic_error);
}

}  // namespace
}  // namespace clipshard
