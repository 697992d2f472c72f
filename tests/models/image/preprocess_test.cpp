// Resize rule, crop offsets (torchvision half-to-even vs Hugging Face floor), the windowed resize
// against the full one, and the CHW layout of normalize_to_chw. Pixel parity with PIL itself is in
// tests/parity/image.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "models/image/pil_resize.h"
#include "models/image/preprocess.h"

namespace clipshard {
namespace {

RgbImage random_image(int width, int height, uint32_t seed) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(size_t{3} * width * height);
  std::mt19937 rng(seed);
  for (auto& v : image.pixels) v = static_cast<uint8_t>(rng() & 0xFF);
  return image;
}

RgbImage crop(const RgbImage& image, int left, int top, int width, int height) {
  RgbImage out;
  out.width = width;
  out.height = height;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = &image.pixels[3 * ((size_t(top) + y) * image.width + left)];
    out.pixels.insert(out.pixels.end(), row, row + 3 * width);
  }
  return out;
}

TEST(CropPlan, ResizeRuleAndRounding) {
  const PreprocessSpec torchvision = openai_preprocess(224);
  const PreprocessSpec hf = hf_clip_preprocess(224);
  // Shorter side -> 224, longer side int(224 * long / short).
  CropPlan plan = plan_resize_and_crop(640, 480, torchvision);
  EXPECT_EQ(plan.resized_width, 298);
  EXPECT_EQ(plan.resized_height, 224);
  plan = plan_resize_and_crop(333, 500, torchvision);
  EXPECT_EQ(plan.resized_width, 224);
  EXPECT_EQ(plan.resized_height, 336);
  plan = plan_resize_and_crop(1, 1, longclip_preprocess(336));
  EXPECT_EQ(plan.resized_width, 336);
  EXPECT_EQ(plan.resized_height, 336);
  EXPECT_EQ(plan.left, 0);
  // Excess 1, 3, 5, 7: (size - n) / 2 = 0.5, 1.5, 2.5, 3.5 -> Python round 0, 2, 2, 4; floor 0, 1, 2, 3.
  const int widths[4] = {225, 227, 229, 231};
  const int half_even[4] = {0, 2, 2, 4};
  const int floor[4] = {0, 1, 2, 3};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(plan_resize_and_crop(widths[i], 224, torchvision).left, half_even[i]) << widths[i];
    EXPECT_EQ(plan_resize_and_crop(widths[i], 224, hf).left, floor[i]) << widths[i];
    EXPECT_EQ(plan_resize_and_crop(224, widths[i], torchvision).top, half_even[i]) << widths[i];
    EXPECT_EQ(plan_resize_and_crop(224, widths[i], hf).top, floor[i]) << widths[i];
  }
  // Extreme aspect ratios do not overflow.
  plan = plan_resize_and_crop(1, 100000, longclip_preprocess(336));
  EXPECT_EQ(plan.resized_height, 33600000);
  EXPECT_EQ(plan.top, (33600000 - 336) / 2);
}

TEST(PilResize, WindowEqualsCropOfFullResize) {
  std::mt19937 rng(7);
  const int sizes[][4] = {{640, 480, 298, 224}, {17, 23, 224, 303}, {300, 305, 224, 227},
                          {1000, 3, 333, 5},    {5, 5, 5, 9},       {9, 4, 9, 4},
                          {31, 40, 11, 40},     {2, 2, 1, 1}};
  for (const auto& s : sizes) {
    const RgbImage src = random_image(s[0], s[1], rng());
    const RgbImage full = pil_resize_bicubic(src, s[2], s[3]);
    ASSERT_EQ(full.width, s[2]);
    ASSERT_EQ(full.height, s[3]);
    for (int trial = 0; trial < 5; ++trial) {
      const int w = 1 + static_cast<int>(rng() % s[2]);
      const int h = 1 + static_cast<int>(rng() % s[3]);
      const int left = static_cast<int>(rng() % (s[2] - w + 1));
      const int top = static_cast<int>(rng() % (s[3] - h + 1));
      RgbImage window;
      pil_resize_bicubic_window(src, s[2], s[3], left, top, w, h, &window);
      EXPECT_EQ(window.pixels, crop(full, left, top, w, h).pixels)
          << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3] << " window " << left << ","
          << top << " " << w << "x" << h;
    }
  }
}

TEST(PilResize, EdgeCases) {
  const RgbImage src = random_image(7, 5, 1);
  EXPECT_EQ(pil_resize_bicubic(src, 7, 5).pixels, src.pixels);  // same size: a copy
  // A single pixel upscaled stays that colour (one tap of weight 1).
  const RgbImage dot = random_image(1, 1, 2);
  const RgbImage big = pil_resize_bicubic(dot, 9, 4);
  for (size_t i = 0; i < big.pixels.size(); ++i) ASSERT_EQ(big.pixels[i], dot.pixels[i % 3]);
  // A constant image stays constant whatever the scale (coefficients sum to one).
  RgbImage flat = random_image(50, 40, 3);
  for (size_t i = 0; i < flat.pixels.size(); ++i) flat.pixels[i] = static_cast<uint8_t>(40 * (i % 3) + 7);
  const RgbImage small = pil_resize_bicubic(flat, 13, 29);
  for (size_t i = 0; i < small.pixels.size(); ++i) ASSERT_EQ(small.pixels[i], 40 * (i % 3) + 7);
  // Invalid requests give an empty image.
  EXPECT_TRUE(pil_resize_bicubic(RgbImage{}, 5, 5).pixels.empty());
  EXPECT_TRUE(pil_resize_bicubic(src, 0, 5).pixels.empty());
  RgbImage out;
  pil_resize_bicubic_window(src, 10, 10, 5, 5, 6, 1, &out);  // past the right edge
  EXPECT_TRUE(out.pixels.empty());
}

TEST(ResizeAndCenterCrop, ShapesAndTinyImages) {
  const PreprocessSpec spec = openai_preprocess(224);
  const RgbImage square = random_image(224, 224, 4);
  EXPECT_EQ(resize_and_center_crop(square, spec).pixels, square.pixels);  // no resize, no crop
  const RgbImage wide = random_image(230, 224, 5);
  EXPECT_EQ(resize_and_center_crop(wide, spec).pixels, crop(wide, 3, 0, 224, 224).pixels);
  const RgbImage dot = random_image(1, 1, 6);
  const RgbImage tiny = resize_and_center_crop(dot, longclip_preprocess(336));
  ASSERT_EQ(tiny.width, 336);
  ASSERT_EQ(tiny.height, 336);
  for (size_t i = 0; i < tiny.pixels.size(); ++i) ASSERT_EQ(tiny.pixels[i], dot.pixels[i % 3]);
  // A 1 x 3000 sliver: only the 336 x 336 window of a 336 x 1,008,000 resize is computed.
  const RgbImage sliver = random_image(1, 3000, 7);
  const RgbImage crop336 = resize_and_center_crop(sliver, longclip_preprocess(336));
  EXPECT_EQ(crop336.width, 336);
  EXPECT_EQ(crop336.height, 336);
  EXPECT_TRUE(resize_and_center_crop(RgbImage{}, spec).pixels.empty());
}

TEST(NormalizeToChw, PlanarLayoutThroughTheLut) {
  const PreprocessSpec spec = openai_preprocess(4);
  const RgbImage image = random_image(4, 4, 8);
  std::vector<float> out(3 * 16);
  normalize_to_chw(image, spec, out.data());
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 16; ++i) {
      const float x = static_cast<float>(image.pixels[3 * i + c]) / 255.0f;
      const float expected = (x - spec.mean[c]) / spec.std[c];
      ASSERT_EQ(std::memcmp(&out[c * 16 + i], &expected, sizeof(float)), 0);
    }
  }
  const NormalizeLut lut = make_normalize_lut(spec);
  EXPECT_FLOAT_EQ(lut[0][0], -0.48145466f / 0.26862954f);
  EXPECT_FLOAT_EQ(lut[2][255], (1.0f - 0.40821073f) / 0.27577711f);
}

}  // namespace
}  // namespace clipshard
