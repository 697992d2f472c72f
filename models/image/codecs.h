// Internal: one decoder per codec library, called by decode_image_bytes once the format is known.
// Each one checks the header's width * height against options.max_pixels before allocating the
// pixels, fills *out on success and returns the RowStatus described in image_decoder.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "models/image/image_decoder.h"

namespace clipshard::image_internal {

RowStatus decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                      RgbImage* out);
RowStatus decode_png(const uint8_t* data, size_t size, const DecodeOptions& options, RgbImage* out);
RowStatus decode_gif(const uint8_t* data, size_t size, const DecodeOptions& options, RgbImage* out);
RowStatus decode_webp(const uint8_t* data, size_t size, const DecodeOptions& options,
                      RgbImage* out);
// BMP, TIFF, PNM, JPEG 2000 through cv::imdecode(IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION), after
// check_other_format_header. In a build without OpenCV (codec_opencv_none.cpp) a row that passes
// the header check is kUnsupportedFormat.
RowStatus decode_with_opencv(const uint8_t* data, size_t size, ImageFormat format,
                             const DecodeOptions& options, RgbImage* out);

// The codec name of a BMP/TIFF/PNM/JPEG 2000 format in row messages ("bmp", "tiff", ...).
const char* other_format_codec(ImageFormat format);
// Width and height from a BMP/TIFF/PNM/JPEG 2000 header, checked by check_dimensions: a bomb is
// refused from the header alone. kCorruptImage when the header cannot be read.
RowStatus check_other_format_header(const uint8_t* data, size_t size, ImageFormat format,
                                    const DecodeOptions& options);

// kImageTooLarge when width * height exceeds the limit, kCorruptImage for a non-positive size.
RowStatus check_dimensions(int64_t width, int64_t height, const DecodeOptions& options,
                           const char* codec);

// Allocates out->pixels for width x height RGB (call only after check_dimensions).
void allocate_rgb(int width, int height, RgbImage* out);

}  // namespace clipshard::image_internal
