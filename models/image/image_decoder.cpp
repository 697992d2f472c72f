#include "models/image/image_decoder.h"

#include <climits>
#include <cstring>
#include <string>

#include "models/image/codecs.h"
#include "shard/image_file.h"

namespace clipshard {
namespace {

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t n) {
  return size >= n && std::memcmp(data, magic, n) == 0;
}

}  // namespace

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts_with(data, size, "\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (starts_with(data, size, "GIF87a", 6) || starts_with(data, size, "GIF89a", 6)) {
    return ImageFormat::kGif;
  }
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
    return ImageFormat::kWebp;
  }
  if (starts_with(data, size, "BM", 2)) return ImageFormat::kBmp;
  if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4)) {
    return ImageFormat::kTiff;
  }
  if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' &&
      (data[2] == ' ' || data[2] == '\t' || data[2] == '\n' || data[2] == '\r' || data[2] == '#')) {
    return ImageFormat::kPnm;
  }
  if (starts_with(data, size, "\0\0\0\x0CjP  \r\n\x87\n", 12) ||
      starts_with(data, size, "\xFF\x4F\xFF\x51", 4)) {
    return ImageFormat::kJpeg2000;
  }
  // Recognised image containers that this tool does not decode.
  if ((size >= 12 && std::memcmp(data + 4, "ftyp", 4) == 0) ||  // HEIC, AVIF (ISO-BMFF)
      starts_with(data, size, "II+\0", 4) || starts_with(data, size, "MM\0+", 4) ||  // BigTIFF
      starts_with(data, size, "8BPS", 4) ||                                          // Photoshop
      starts_with(data, size, "\0\0\1\0", 4) ||                                      // ICO
      starts_with(data, size, "\0\0\2\0", 4) ||                                      // CUR
      starts_with(data, size, "DDS ", 4) ||                       // DirectDraw surface
      starts_with(data, size, "qoif", 4) ||                       // QOI
      starts_with(data, size, "\x76\x2F\x31\x01", 4) ||           // OpenEXR
      starts_with(data, size, "#?RADIANCE", 10) ||                // Radiance HDR
      starts_with(data, size, "\xFF\x0A", 2) ||                   // JPEG XL codestream
      starts_with(data, size, "\0\0\0\x0CJXL \r\n\x87\n", 12) ||  // JPEG XL container
      starts_with(data, size, "\x59\xA6\x6A\x95", 4) ||           // Sun raster
      starts_with(data, size, "PF\n", 3) || starts_with(data, size, "Pf\n", 3)) {  // PFM
    return ImageFormat::kOther;
  }
  return ImageFormat::kUnknown;
}

RowStatus decode_image_file(const std::filesystem::path& path, const DecodeOptions& options,
                            RgbImage* out) {
  *out = RgbImage{};
  const std::string name = path.string();
  if (is_remote_path(name)) {
    return RowStatus::Error(RowError::kRemotePath, "remote paths are not supported: " + name);
  }
  // One buffer per thread, reused across images (the decode pool reads millions of files).
  thread_local std::vector<uint8_t> buffer;
  RowStatus status = read_image_file(path, &buffer);
  if (status.ok()) status = decode_image_bytes(buffer.data(), buffer.size(), options, out);
  constexpr size_t kKeepBytes = size_t{64} << 20;
  if (buffer.capacity() > kKeepBytes) std::vector<uint8_t>().swap(buffer);
  return status;
}

RowStatus decode_image_bytes(const uint8_t* data, size_t size, const DecodeOptions& options,
                             RgbImage* out) {
  *out = RgbImage{};
  if (size == 0) return RowStatus::Error(RowError::kEmptyFile, "empty file");
  const ImageFormat format = detect_image_format(data, size);
  RowStatus status;
  switch (format) {
    case ImageFormat::kUnknown:
      return RowStatus::Error(RowError::kNotAnImage, "no known image signature");
    case ImageFormat::kOther:
      return RowStatus::Error(RowError::kUnsupportedFormat, "unsupported image format");
    case ImageFormat::kJpeg:
      status = image_internal::decode_jpeg(data, size, options, out);
      break;
    case ImageFormat::kPng:
      status = image_internal::decode_png(data, size, options, out);
      break;
    case ImageFormat::kGif:
      status = image_internal::decode_gif(data, size, options, out);
      break;
    case ImageFormat::kWebp:
      status = image_internal::decode_webp(data, size, options, out);
      break;
    case ImageFormat::kBmp:
    case ImageFormat::kTiff:
    case ImageFormat::kPnm:
    case ImageFormat::kJpeg2000:
      status = image_internal::decode_with_opencv(data, size, format, options, out);
      break;
  }
  if (!status.ok()) *out = RgbImage{};
  return status;
}

namespace image_internal {

RowStatus check_dimensions(int64_t width, int64_t height, const DecodeOptions& options,
                           const char* codec) {
  if (width <= 0 || height <= 0) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": invalid size " +
                                                         std::to_string(width) + "x" +
                                                         std::to_string(height));
  }
  // Sides are bounded first so that the product cannot overflow; the last test keeps
  // 3 * width * height far from overflow whatever max_pixels says.
  if (width > INT_MAX / 4 || height > INT_MAX / 4 || width * height > options.max_pixels ||
      width * height > (int64_t{1} << 40)) {
    return RowStatus::Error(RowError::kImageTooLarge,
                            std::string(codec) + ": " + std::to_string(width) + "x" +
                                std::to_string(height) + " exceeds max_pixels " +
                                std::to_string(options.max_pixels));
  }
  return RowStatus::Ok();
}

void allocate_rgb(int width, int height, RgbImage* out) {
  out->width = width;
  out->height = height;
  out->pixels.resize(size_t{3} * static_cast<size_t>(width) * static_cast<size_t>(height));
  out->alpha.clear();
}

}  // namespace image_internal
}  // namespace clipshard
