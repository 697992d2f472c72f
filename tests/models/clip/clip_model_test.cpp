// The CLIP/LongCLIP forward: pooling rule, dynamic text length, batching, input checks.
#include "models/clip/clip_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/clip/random_model.h"
#include "parity/clip/fixture_io.h"

namespace clipshard {
namespace {

ClipModel random_model(const std::string& preset, uint64_t seed, ClipDims* dims_out = nullptr) {
  const ClipDims dims = preset_dims(preset);
  ClipModel model(dims);
  model->load_weights(make_random_weights(dims, seed));
  model->eval();
  model->place(resolve_device("cpu", ""));
  if (dims_out) *dims_out = dims;
  return model;
}

// Token rows like the tokenizer's: start id, text ids, end id, padding 0.
at::Tensor token_rows(int64_t vocab, int64_t context, const std::vector<int64_t>& lengths,
                      uint64_t seed) {
  torch::manual_seed(seed);
  auto ids = torch::zeros({static_cast<int64_t>(lengths.size()), context}, torch::kLong);
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t n = lengths[i];
    ids[i][0] = vocab - 2;
    ids[i].narrow(0, 1, n) = torch::randint(0, vocab - 2, {n}, torch::kLong);
    ids[i][n + 1] = vocab - 1;
  }
  return ids;
}

TEST(ClipModel, PoolsAtFirstEndIdOrFirstLargest) {
  ClipDims dims;
  ClipModel model = random_model("micro", 1, &dims);
  auto ids = torch::tensor({1022, 5, 1023, 7, 1023, 0, 0}, torch::kLong).view({1, 7});
  EXPECT_EQ(model->pooled_positions(ids)[0].item<int64_t>(), 2);
  auto no_end = torch::tensor({1022, 5, 900, 1000, 1000, 3, 0}, torch::kLong).view({1, 7});
  EXPECT_EQ(model->pooled_positions(no_end)[0].item<int64_t>(), 0);  // the start id is largest
  auto plain = torch::tensor({5, 900, 1000, 1000, 3}, torch::kLong).view({1, 5});
  EXPECT_EQ(model->pooled_positions(plain)[0].item<int64_t>(), 2);  // first of the two maxima
}

TEST(ClipModel, ConfiguredEosIdPoolsAtItsFirstOccurrence) {
  ClipDims dims = preset_dims("micro");
  dims.eos_token_id = 7;
  ClipModel model(dims);
  auto ids = torch::tensor({1022, 5, 7, 1000, 7}, torch::kLong).view({1, 5});
  EXPECT_EQ(model->pooled_positions(ids)[0].item<int64_t>(), 2);
}

// load_weights takes fp32 contiguous tensors over without a copy and converts anything else.
TEST(ClipModel, LoadWeightsSharesFp32MemoryAndConvertsOtherDtypes) {
  const ClipDims dims = preset_dims("micro");
  const StateDict sd = make_random_weights(dims, 2);
  ClipModel shared(dims);
  shared->load_weights(sd);
  StateDict half;
  for (const auto& [name, t] : sd) half[name] = t.to(at::kHalf);
  ClipModel converted(dims);
  converted->load_weights(half);
  const auto converted_params = converted->named_parameters();
  size_t checked = 0;
  for (const auto& p : shared->named_parameters()) {
    const at::Tensor& source = sd.at(p.key());
    EXPECT_EQ(p.value().data_ptr(), source.data_ptr()) << p.key();
    const at::Tensor& c = converted_params[p.key()];
    EXPECT_EQ(c.scalar_type(), at::kFloat) << p.key();
    EXPECT_TRUE(torch::equal(c, half.at(p.key()).to(at::kFloat).view(c.sizes()))) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, sd.size());
}

// On the CPU a batch larger than the activation budget runs in micro-batches (longclip-tiny: 21
// images of 577 tokens, 99 texts of 248 tokens); rows must come back in order with the values of
// single-row calls.
TEST(ClipModel, MicroBatchesKeepRowsInOrder) {
  ClipDims dims;
  ClipModel model = random_model("longclip-tiny", 11, &dims);
  torch::manual_seed(4);
  const auto images =
      torch::randn({23, 3, dims.image_resolution, dims.image_resolution}, torch::kFloat);
  const auto batch = model->encode_image(images);
  ASSERT_EQ(batch.size(0), 23);
  double worst = 0;
  for (int64_t i : {0L, 20L, 21L, 22L})
    worst = std::max(worst, testing::max_abs_diff(model->encode_image(images.narrow(0, i, 1)),
                                                  batch.narrow(0, i, 1)));
  std::vector<int64_t> lengths(101, 5);
  for (size_t i = 0; i < lengths.size(); ++i) lengths[i] = 3 + static_cast<int64_t>(i * 7) % 240;
  lengths.back() = dims.context_length - 2;
  const auto ids = token_rows(dims.vocab_size, dims.context_length, lengths, 12);
  const auto texts = model->encode_text(ids);
  ASSERT_EQ(texts.size(0), 101);
  for (int64_t i : {0L, 50L, 98L, 99L, 100L})
    worst = std::max(worst, testing::max_abs_diff(model->encode_text(ids.narrow(0, i, 1)),
                                                  texts.narrow(0, i, 1)));
  std::cout << "micro-batches vs single rows, max abs diff " << worst << "\n";
  EXPECT_LE(worst, 1e-5);
}

void expect_dynamic_length_equals_full_padding(const std::string& preset) {
  ClipDims dims;
  ClipModel model = random_model(preset, 5, &dims);
  // The last row ends at the last position, so the batch runs over the whole context.
  const auto full =
      token_rows(dims.vocab_size, dims.context_length, {3, 30, 12, dims.context_length - 2}, 9);
  const auto want = model->encode_text(full);
  double worst = 0;
  for (int64_t len : {32L, 40L, dims.context_length - 1}) {
    const auto got = model->encode_text(full.narrow(0, 0, 3).narrow(1, 0, len).contiguous());
    worst = std::max(worst, testing::max_abs_diff(got, want.narrow(0, 0, 3)));
  }
  // Also one row at a time (batch composition must not matter).
  for (int64_t i = 0; i < full.size(0); ++i)
    worst = std::max(worst, testing::max_abs_diff(model->encode_text(full.narrow(0, i, 1)),
                                                  want.narrow(0, i, 1)));
  std::cout << preset << ": dynamic length / single rows vs full padding, max abs diff " << worst
            << "\n";
  EXPECT_LE(worst, 1e-5);
}

TEST(ClipModel, DynamicTextLengthEqualsFullPaddingClip) {
  expect_dynamic_length_equals_full_padding("tiny");
}

TEST(ClipModel, DynamicTextLengthEqualsFullPaddingLongClip) {
  expect_dynamic_length_equals_full_padding("longclip-tiny");
}

TEST(ClipModel, ImageBatchEqualsSingleImages) {
  ClipDims dims;
  ClipModel model = random_model("micro", 2, &dims);
  torch::manual_seed(3);
  const auto images = torch::randn({3, 3, 64, 64});
  const auto batch = model->encode_image(images);
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{3, dims.embed_dim}));
  EXPECT_EQ(batch.scalar_type(), torch::kFloat);
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_LE(
        testing::max_abs_diff(model->encode_image(images.narrow(0, i, 1)), batch.narrow(0, i, 1)),
        1e-5);
  // Different images give different features (the random weights are not degenerate).
  EXPECT_GT(testing::max_abs_diff(batch[0], batch[1]), 1e-3);
  // The result is an ordinary tensor: in-place updates outside inference mode work.
  auto copy = batch;
  EXPECT_NO_THROW(copy.div_(2));
}

TEST(ClipModel, RejectsBadShapes) {
  ClipModel model = random_model("micro", 2);
  EXPECT_THROW(model->encode_image(torch::zeros({1, 3, 32, 32})), ModelError);
  EXPECT_THROW(model->encode_text(torch::zeros({1, 78}, torch::kLong)), ModelError);
  EXPECT_THROW(model->encode_text(torch::full({1, 5}, 5000, torch::kLong)), ModelError);
}

TEST(ClipModel, DeviceChoice) {
  const auto cpu = resolve_device("cpu", "");
  EXPECT_TRUE(cpu.device.is_cpu());
  EXPECT_EQ(cpu.dtype, torch::kFloat);
  EXPECT_THROW(resolve_device("cpu", "fp16"), ModelError);
  EXPECT_THROW(resolve_device("tpu", ""), ModelError);
  EXPECT_THROW(resolve_device("cpu", "int8"), ModelError);
  const auto automatic = resolve_device("auto", "auto");
  EXPECT_EQ(automatic.dtype, automatic.device.is_cuda() ? torch::kHalf : torch::kFloat);
  EXPECT_EQ(resolve_device("cpu", "bf16").dtype, torch::kBFloat16);
  EXPECT_EQ(resolve_device("cpu", "fp32").dtype, torch::kFloat);
  try {
    resolve_device("cpu", "fp16");
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  EXPECT_STREQ(precision_name(torch::kBFloat16), "bf16");
  EXPECT_STREQ(precision_name(torch::kHalf), "fp16");
  EXPECT_STREQ(precision_name(torch::kFloat), "fp32");
}

// bf16 on the CPU: every op of both towers runs (QuickGELU, exact and tanh GELU; LongCLIP's
// positional split) and the features stay close to fp32's (bf16 keeps 8 mantissa bits).
TEST(ClipModel, Bf16OnTheCpuRunsEveryOpAndStaysCloseToFp32) {
  for (const std::string preset : {"micro", "longclip-tiny"}) {
    for (const Activation act :
         {Activation::kQuickGelu, Activation::kGelu, Activation::kGeluTanh}) {
      ClipDims dims = preset_dims(preset);
      dims.activation = act;
      const StateDict weights = make_random_weights(dims, 3);
      ClipModel fp32(dims), bf16(dims);
      fp32->load_weights(weights);
      bf16->load_weights(weights);
      fp32->place(resolve_device("cpu", "fp32"));
      bf16->place(resolve_device("cpu", "bf16"));
      torch::manual_seed(4);
      const int64_t r = dims.image_resolution;
      const auto images = torch::randn({3, 3, r, r});
      const auto ids = token_rows(dims.vocab_size, dims.context_length, {3, 30, 5}, 5);
      const auto cosine = [](const at::Tensor& a, const at::Tensor& b) {
        return torch::nn::functional::cosine_similarity(a, b).min().item<double>();
      };
      const auto image_a = fp32->encode_image(images), image_b = bf16->encode_image(images);
      const auto text_a = fp32->encode_text(ids), text_b = bf16->encode_text(ids);
      EXPECT_EQ(image_b.scalar_type(), torch::kFloat);  // results are fp32 whatever the precision
      EXPECT_GT(cosine(image_a, image_b), 0.99) << preset;
      EXPECT_GT(cosine(text_a, text_b), 0.99) << preset;
      EXPECT_GT((image_a - image_b).abs().max().item<double>(), 0.0) << "bf16 was not used";
    }
  }
}

}  // namespace
}  // namespace clipshard
