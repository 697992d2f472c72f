#include "models/image/preprocess.h"

#include <algorithm>

#include "models/image/pil_resize.h"

namespace clipshard {
namespace {

// Offset of an n-wide crop in a size-wide image, excess = size - n >= 0.
int crop_offset(int64_t excess, CropRounding rounding) {
  const int64_t half = excess / 2;
  if (rounding == CropRounding::kFloor || excess % 2 == 0) return static_cast<int>(half);
  // excess / 2 = half + 0.5 exactly: Python's round() goes to the even neighbour.
  return static_cast<int>(half % 2 == 0 ? half : half + 1);
}

}  // namespace

CropPlan plan_resize_and_crop(int width, int height, const PreprocessSpec& spec) {
  CropPlan plan;
  const int64_t n = spec.size;
  const bool width_is_short = width <= height;
  const int64_t short_side = width_is_short ? width : height;
  const int64_t long_side = width_is_short ? height : width;
  // Python: int(size * long / short), a correctly rounded true division then truncation.
  const int64_t new_long =
      static_cast<int64_t>(static_cast<double>(n * long_side) / static_cast<double>(short_side));
  plan.resized_width = width_is_short ? n : new_long;
  plan.resized_height = width_is_short ? new_long : n;
  plan.left = crop_offset(plan.resized_width - n, spec.rounding);
  plan.top = crop_offset(plan.resized_height - n, spec.rounding);
  return plan;
}

void resize_and_center_crop(const RgbImage& image, const PreprocessSpec& spec, RgbImage* out) {
  if (image.width < 1 || image.height < 1 || spec.size < 1) {
    *out = RgbImage{};
    return;
  }
  const CropPlan plan = plan_resize_and_crop(image.width, image.height, spec);
  const size_t n_pixels = static_cast<size_t>(image.width) * static_cast<size_t>(image.height);
  // Pillow returns a copy when the size does not change: no premultiplication round trip then.
  if (!spec.resize_before_rgb || image.alpha.size() != n_pixels ||
      (plan.resized_width == image.width && plan.resized_height == image.height)) {
    pil_resize_bicubic_window(image, plan.resized_width, plan.resized_height, plan.left, plan.top,
                              spec.size, spec.size, out);
    return;
  }
  // Image.resize of an RGBA image: convert("RGBa") (c * a / 255, rounded as MULDIV255), the same
  // separable resample on every band, convert("RGBA") (c * 255 / a, truncated and clipped; a of 0
  // or 255 copies c).
  RgbImage premultiplied, alpha;
  premultiplied.width = alpha.width = image.width;
  premultiplied.height = alpha.height = image.height;
  premultiplied.pixels.resize(3 * n_pixels);
  alpha.pixels.resize(3 * n_pixels);
  for (size_t i = 0; i < n_pixels; ++i) {
    const unsigned a = image.alpha[i];
    for (int c = 0; c < 3; ++c) {
      const unsigned t = image.pixels[3 * i + c] * a + 128;
      premultiplied.pixels[3 * i + c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
      alpha.pixels[3 * i + c] = static_cast<uint8_t>(a);
    }
  }
  RgbImage resized_alpha;
  pil_resize_bicubic_window(premultiplied, plan.resized_width, plan.resized_height, plan.left,
                            plan.top, spec.size, spec.size, out);
  pil_resize_bicubic_window(alpha, plan.resized_width, plan.resized_height, plan.left, plan.top,
                            spec.size, spec.size, &resized_alpha);
  const size_t n_out = static_cast<size_t>(out->width) * static_cast<size_t>(out->height);
  for (size_t i = 0; i < n_out; ++i) {
    const unsigned a = resized_alpha.pixels[3 * i];
    if (a == 0 || a == 255) continue;
    for (int c = 0; c < 3; ++c) {
      const unsigned v = 255u * out->pixels[3 * i + c] / a;
      out->pixels[3 * i + c] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

RgbImage resize_and_center_crop(const RgbImage& image, const PreprocessSpec& spec) {
  RgbImage out;
  resize_and_center_crop(image, spec, &out);
  return out;
}

NormalizeLut make_normalize_lut(const PreprocessSpec& spec) {
  NormalizeLut lut;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float x = static_cast<float>(v) / 255.0f;  // ToTensor: img.float().div(255)
      lut[c][v] = (x - spec.mean[c]) / spec.std[c];    // Normalize: sub_(mean).div_(std)
    }
  }
  return lut;
}

void normalize_to_chw(const RgbImage& crop, const NormalizeLut& lut, float* out) {
  const size_t plane = static_cast<size_t>(crop.width) * static_cast<size_t>(crop.height);
  const uint8_t* px = crop.pixels.data();
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  for (size_t i = 0; i < plane; ++i, px += 3) {
    r[i] = lut[0][px[0]];
    g[i] = lut[1][px[1]];
    b[i] = lut[2][px[2]];
  }
}

void normalize_to_chw(const RgbImage& crop, const PreprocessSpec& spec, float* out) {
  normalize_to_chw(crop, make_normalize_lut(spec), out);
}

}  // namespace clipshard
