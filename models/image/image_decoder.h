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

#include "shard/config_fields.h"
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
  // JPEG only: let libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale (jpeg_reduced_scale_denominator
  // says which) before the resize. Much faster on large photos (the 1/8 IDCT is the block mean,
  // the resize then starts from 64x fewer pixels), but it CHANGES PIXELS: libjpeg's scaled IDCT
  // is not PIL's full decode + antialiased resize, so it is never used in parity mode.
  bool reduced_decode = false;
  // The preprocessing size the image is decoded for (224 or 336); only read by reduced_decode.
  int target_short_side = 224;
  // reduced_decode: the decoded shorter side must stay >= this many times target_short_side, so
  // the PIL resize after it still reduces (and antialiases) by at least this factor. 1.0 = decode
  // down to the resize target itself; docs/PERFORMANCE.md ("Reduced decode") has the score
  // differences of 1.0, 1.25, 1.5 and 2.0 that chose this value.
  double reduced_margin = 1.0;
  // reduced_decode: also libjpeg's fast integer IDCT (JDCT_IFAST) and merged (non-fancy) chroma
  // upsampling. They only act where the IDCT is still 8x8 or the chroma is still upsampled, i.e.
  // JPEGs too small to be scaled (and the chroma of a 1/2 decode). Off: it measured no faster and
  // doubled the pixel difference to exact decoding (docs/PERFORMANCE.md, "Reduced decode").
  bool reduced_fast_dct = false;
};

// The config keys of DecodeOptions (docs/CONFIG.md, at the top level of a run config):
// `max_image_pixels` (max_pixels, 1 .. 2^40) and `reduced_decode`, both part of the result
// fingerprint (they change which images are refused and their pixels). The other fields are set by
// the code that decodes (target_short_side) or are measured choices, not settings.
const ConfigFields<DecodeOptions>& decode_config_fields();
// Reads an object holding only those keys (read_config_object: others are errors naming them).
void from_json(const nlohmann::json& object, DecodeOptions& options);

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

// The libjpeg scale denominator (1, 2, 4 or 8) a JPEG of width x height is decoded with: 1 unless
// options.reduced_decode; otherwise the largest d whose decoded shorter side, ceil(short / d) as
// libjpeg rounds, is >= options.reduced_margin * options.target_short_side (1 when none is).
// The decoded size is then ceil(width / d) x ceil(height / d).
int jpeg_reduced_scale_denominator(int64_t width, int64_t height, const DecodeOptions& options);

}  // namespace clipshard
