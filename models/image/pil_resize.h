// Pillow's antialiased BICUBIC resize (ImagingResample in Pillow 9.4's src/libImaging/Resample.c)
// for 8-bit RGB, bit for bit: filter a = -0.5 with its support scaled by the reduction factor,
// coefficients normalised per output pixel and converted to 22-bit fixed point, a horizontal pass
// then a vertical pass, each rounded and clipped to 8 bits. Integer arithmetic only in the passes.
// This is what `img.resize((w, h), Image.BICUBIC)` (torchvision Resize, CLIPImageProcessor) does;
// OpenCV's INTER_CUBIC is a different filter.
#pragma once

#include <cstdint>

#include "models/image/image_decoder.h"

namespace clipshard {

// The whole image resized to out_width x out_height. Equal sizes give a copy (Pillow returns a
// copy too). Returns an empty image when src is empty or a size is < 1.
RgbImage pil_resize_bicubic(const RgbImage& src, int out_width, int out_height);

// Only the window [left, left + width) x [top, top + height) of the image that
// pil_resize_bicubic(src, out_width, out_height) would give, bit-identical to cropping it, at the
// cost of the window alone (a center crop of a panorama never computes the discarded sides).
// Requires a non-empty src, 0 <= left, left + width <= out_width, 0 <= top,
// top + height <= out_height, width and height >= 1; otherwise *out is left empty. Reuses
// out->pixels' capacity.
void pil_resize_bicubic_window(const RgbImage& src, int64_t out_width, int64_t out_height,
                               int left, int top, int width, int height, RgbImage* out);

}  // namespace clipshard
