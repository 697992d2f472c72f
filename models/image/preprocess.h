// CLIP image preprocessing after decoding: resize (shorter side -> n, PIL bicubic), center crop
// n x n, scale to [0, 1] and normalise to float32 CHW. Matches torchvision's
// Resize(n, BICUBIC) + CenterCrop(n) + ToTensor + Normalize (OpenAI CLIP, Long-CLIP) and Hugging
// Face's slow CLIPImageProcessor; the two differ only in how the crop offset is rounded.
#pragma once

#include <array>
#include <cstdint>

#include "models/image/image_decoder.h"

namespace clipshard {

enum class CropRounding {
  kHalfToEven,  // torchvision: int(round((size - n) / 2)), Python rounds .5 to even
  kFloor,       // Hugging Face CLIPImageProcessor: (size - n) // 2
};

struct PreprocessSpec {
  int size = 224;  // n: output is n x n (224 for ViT-B/32, 336 for Long-CLIP / ViT-L/14@336)
  CropRounding rounding = CropRounding::kHalfToEven;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // OpenAI CLIP's, per channel
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  // true: the resize happens before convert("RGB"), as in open_clip's eval transform, so an image
  // with alpha (RgbImage::alpha) is resized by Pillow in premultiplied RGBa and unpremultiplied
  // before the alpha is dropped. false: alpha is ignored (the Hugging Face processor converts
  // first). (OpenAI's / Long-CLIP's transform also converts after the resize; those pipelines keep
  // their historical behaviour here.)
  bool resize_before_rgb = false;
};

// The presets of the three reference pipelines.
inline PreprocessSpec openai_preprocess(int size = 224) {
  return {size, CropRounding::kHalfToEven};
}
inline PreprocessSpec longclip_preprocess(int size = 336) {
  return {size, CropRounding::kHalfToEven};
}
inline PreprocessSpec hf_clip_preprocess(int size = 224) { return {size, CropRounding::kFloor}; }
// open_clip's eval transform: torchvision's rounding with the model's own mean/std.
inline PreprocessSpec open_clip_preprocess(int size, const std::array<float, 3>& mean,
                                           const std::array<float, 3>& std) {
  return {size, CropRounding::kHalfToEven, mean, std, /*resize_before_rgb=*/true};
}

// Where the crop comes from: the resized size (shorter side n, longer side
// int(n * long / short), unchanged when the image already has that size) and the crop's top-left
// corner in it. The resized image is never smaller than n x n, so no padding is ever needed
// (a 1x1 image is resized to n x n, as torchvision and the HF processor do).
struct CropPlan {
  int64_t resized_width = 0;
  int64_t resized_height = 0;
  int left = 0;
  int top = 0;
};
// Requires width, height >= 1 and spec.size >= 1.
CropPlan plan_resize_and_crop(int width, int height, const PreprocessSpec& spec);

// The n x n uint8 crop of the resized image, computing only the cropped pixels (bit-identical to
// PIL's full resize followed by the crop; with spec.resize_before_rgb and an alpha plane, to
// Pillow 9.4's RGBA resize through premultiplied RGBa followed by convert("RGB")). Returns an empty
// image for an empty input. The second form reuses out->pixels' capacity.
RgbImage resize_and_center_crop(const RgbImage& image, const PreprocessSpec& spec);
void resize_and_center_crop(const RgbImage& image, const PreprocessSpec& spec, RgbImage* out);

// Per channel c and byte value v: (float(v) / 255 - mean[c]) / std[c], each operation in float32
// exactly as torchvision's ToTensor + Normalize (and, bit for bit, the HF processor) compute it.
using NormalizeLut = std::array<std::array<float, 256>, 3>;
NormalizeLut make_normalize_lut(const PreprocessSpec& spec);

// crop (spec.size x spec.size RGB) -> out[c * n * n + y * n + x], 3 * n * n floats. Requires
// crop.width == crop.height == spec.size. The second form takes a prebuilt LUT (hot path).
void normalize_to_chw(const RgbImage& crop, const PreprocessSpec& spec, float* out);
void normalize_to_chw(const RgbImage& crop, const NormalizeLut& lut, float* out);

}  // namespace clipshard
