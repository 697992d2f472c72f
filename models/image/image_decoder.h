// Image decoding with the reference's semantics: `PIL.Image.open(p).convert("RGB")` (Pillow 9.4).
//
// The format is detected from the bytes (never the extension) and each one goes to its codec
// library: JPEG -> libjpeg-turbo (ISLOW IDCT, fancy upsampling), PNG -> libpng, GIF -> giflib
// (first frame), WebP -> libwebp (first frame), BMP / TIFF / PNM / JPEG 2000 -> OpenCV's imdecode
// (no EXIF rotation). Conversions to RGB follow Pillow's rules (fixtures/README.md, "Images"):
// alpha dropped without compositing, palette expanded ignoring transparency, 1-bit -> 0/255,
// 16-bit grey PNG clamped to 0..255 (Pillow's mode "I"), 16-bit colour -> high byte, CMYK JPEG
// un-inverted (Adobe polarity, as Pillow always assumes) then R = k - MULDIV255(255 - c, k).
// EXIF orientation is never applied.
//
// Every failure is a per-row RowStatus; nothing here throws for bad data, prints, or exits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "shard/image_file.h"  // is_remote_path, read_image_file
#include "shard/row_status.h"

namespace clipshard {

// Row-major, interleaved RGB, 8 bits per channel: pixel (x, y) starts at 3 * (y * width + x).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
  // The alpha channel Pillow would keep before convert("RGB") (PNG modes RGBA and LA), width *
  // height bytes; empty for every other image. `pixels` never depends on it (alpha dropped
  // without compositing); only pipelines that resize before the RGB conversion read it.
  std::vector<uint8_t> alpha;
};

struct DecodeOptions {
  // Images with width * height above this are refused with kImageTooLarge, from the header and
  // before any pixel memory is allocated (decompression bombs). The default is the size at which
  // Pillow raises DecompressionBombError (2 * Image.MAX_IMAGE_PIXELS).
  int64_t max_pixels = 2 * int64_t{89478485};
  // JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 scale (the strongest reduction whose shorter
  // side stays >= 2 * target_short_side). Much faster on large photos, but it CHANGES PIXELS
  // (libjpeg's scaled IDCT is not PIL's full decode + resize), so it is never used in parity mode.
  bool reduced_decode = false;
  // The preprocessing size the image is decoded for (224 or 336); only read by reduced_decode.
  int target_short_side = 224;
};

// What the bytes are, from their signature.
enum class ImageFormat { kUnknown, kJpeg, kPng, kGif, kWebp, kBmp, kTiff, kPnm, kJpeg2000, kOther };

// Detects the container from the first bytes. kOther = a recognised image format we do not
// decode (HEIC/AVIF, ICO, PSD, ...): decoding it gives kUnsupportedFormat.
ImageFormat detect_image_format(const uint8_t* data, size_t size);

// False in a build without OpenCV (CLIPSHARD_WITH_OPENCV=OFF): BMP, TIFF, PNM and JPEG 2000 then
// decode to kUnsupportedFormat (kImageTooLarge and kCorruptImage from their headers still apply).
bool image_decoder_has_opencv();

// Reads (shard/image_file.h: read_image_file, no size limit) and decodes one image file. Errors:
// kRemotePath (is_remote_path, checked before any file access), those of read_image_file
// (kFileNotFound, kIsDirectory, kUnreadableFile, kEmptyFile), then those of decode_image_bytes.
// On error *out is left empty (width = height = 0).
RowStatus decode_image_file(const std::filesystem::path& path, const DecodeOptions& options,
                            RgbImage* out);

// Decodes an in-memory image. Errors: kEmptyFile (size 0), kNotAnImage (no known signature, e.g. a
// text or HTML file), kUnsupportedFormat, kImageTooLarge, kTruncatedImage (the data ends before
// the last pixel row: Pillow raises "image file is truncated", so a partial image is never
// returned), kCorruptImage (the codec reported invalid data).
RowStatus decode_image_bytes(const uint8_t* data, size_t size, const DecodeOptions& options,
                             RgbImage* out);

}  // namespace clipshard
