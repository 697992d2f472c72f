// BMP, TIFF, PNM and JPEG 2000 through OpenCV's imdecode (IMREAD_COLOR |
// IMREAD_IGNORE_ORIENTATION: 8-bit BGR, no EXIF rotation, alpha dropped), after reading the
// size from the header ourselves so that a decompression bomb is refused before OpenCV allocates.
// These decode exactly as Pillow does for 8-bit images (notes/opencv-vs-pil-decoding.md); OpenCV
// does not tell a truncated file from a corrupt one, so both are kCorruptImage here.
#include <opencv2/core/utils/logger.hpp>

#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

uint32_t read_u32(const uint8_t* p, bool big_endian) {
  return big_endian ? (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]
                    : (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}
uint16_t read_u16(const uint8_t* p, bool big_endian) {
  return static_cast<uint16_t>(big_endian ? (p[0] << 8) | p[1] : (p[1] << 8) | p[0]);
}

bool bmp_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
  if (size < 26) return false;
  const uint32_t header = read_u32(data + 14, false);
  if (header == 12) {  // BITMAPCOREHEADER: 16-bit sizes
    *width = read_u16(data + 18, false);
    *height = read_u16(data + 20, false);
    return true;
  }
  *width = static_cast<int32_t>(read_u32(data + 18, false));
  *height = std::llabs(static_cast<int32_t>(read_u32(data + 22, false)));  // < 0: top-down rows
  return true;
}

// ImageWidth (256) and ImageLength (257) of the first IFD.
bool tiff_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
  if (size < 8) return false;
  const bool big = data[0] == 'M';
  const uint64_t ifd = read_u32(data + 4, big);
  if (ifd + 2 > size) return false;
  const unsigned entries = read_u16(data + ifd, big);
  *width = *height = -1;
  for (unsigned i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + 2 + uint64_t{12} * i;
    if (entry + 12 > size) return false;
    const uint8_t* e = data + entry;
    const unsigned tag = read_u16(e, big);
    const unsigned type = read_u16(e + 2, big);
    if (tag != 256 && tag != 257) continue;
    int64_t value = -1;
    if (type == 3) value = read_u16(e + 8, big);       // SHORT
    else if (type == 4) value = read_u32(e + 8, big);  // LONG
    (tag == 256 ? *width : *height) = value;
  }
  return *width >= 0 && *height >= 0;
}

// "P6 <width> <height> ..." with '#' comments between the tokens.
bool pnm_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
  size_t pos = 2;
  int64_t values[2];
  for (int64_t& value : values) {
    while (pos < size) {
      if (data[pos] == '#') {
        while (pos < size && data[pos] != '\n' && data[pos] != '\r') ++pos;
      } else if (data[pos] == ' ' || data[pos] == '\t' || data[pos] == '\n' || data[pos] == '\r') {
        ++pos;
      } else {
        break;
      }
    }
    if (pos >= size || data[pos] < '0' || data[pos] > '9') return false;
    value = 0;
    while (pos < size && data[pos] >= '0' && data[pos] <= '9') {
      value = value * 10 + (data[pos] - '0');
      if (value > (int64_t{1} << 40)) return false;
      ++pos;
    }
  }
  *width = values[0];
  *height = values[1];
  return true;
}

// SIZ marker of a raw codestream (FF4F FF51 Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz).
bool j2k_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
  if (size < 24 || data[0] != 0xFF || data[1] != 0x4F || data[2] != 0xFF || data[3] != 0x51) {
    return false;
  }
  const int64_t x = read_u32(data + 8, true), y = read_u32(data + 12, true);
  const int64_t x0 = read_u32(data + 16, true), y0 = read_u32(data + 20, true);
  *width = x - x0;
  *height = y - y0;
  return true;
}

// The 'ihdr' box inside the 'jp2h' header box of a JP2 file.
bool jp2_size(const uint8_t* data, size_t size, int64_t* width, int64_t* height) {
  size_t pos = 0, end = size;
  for (int boxes = 0; boxes < 1000 && pos + 8 <= end; ++boxes) {
    uint64_t length = read_u32(data + pos, true);
    size_t header = 8;
    if (length == 1) {
      if (pos + 16 > end) return false;
      length = (uint64_t{read_u32(data + pos + 8, true)} << 32) | read_u32(data + pos + 12, true);
      header = 16;
    } else if (length == 0) {
      length = end - pos;
    }
    if (length < header || length > end - pos) return false;
    if (std::memcmp(data + pos + 4, "jp2h", 4) == 0) {  // descend into the superbox
      end = pos + length;
      pos += header;
      continue;
    }
    if (std::memcmp(data + pos + 4, "ihdr", 4) == 0) {
      if (length < header + 8) return false;
      *height = read_u32(data + pos + header, true);
      *width = read_u32(data + pos + header + 4, true);
      return true;
    }
    pos += length;
  }
  return false;
}

}  // namespace

RowStatus decode_with_opencv(const uint8_t* data, size_t size, ImageFormat format,
                             const DecodeOptions& options, RgbImage* out) {
  int64_t width = -1, height = -1;
  bool known = false;
  const char* codec = "opencv";
  switch (format) {
    case ImageFormat::kBmp:
      known = bmp_size(data, size, &width, &height);
      codec = "bmp";
      break;
    case ImageFormat::kTiff:
      known = tiff_size(data, size, &width, &height);
      codec = "tiff";
      break;
    case ImageFormat::kPnm:
      known = pnm_size(data, size, &width, &height);
      codec = "pnm";
      break;
    case ImageFormat::kJpeg2000:
      known = j2k_size(data, size, &width, &height) || jp2_size(data, size, &width, &height);
      codec = "jpeg2000";
      break;
    default:
      break;
  }
  if (!known) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": unreadable header");
  }
  RowStatus status = check_dimensions(width, height, options, codec);
  if (!status.ok()) return status;

  if (size > static_cast<size_t>(INT_MAX)) {
    return RowStatus::Error(RowError::kImageTooLarge, std::string(codec) + ": file over 2 GiB");
  }
  // OpenCV prints decoder warnings to stderr; here a bad file is a per-row record, so keep quiet.
  static std::once_flag quiet;
  std::call_once(quiet, [] { cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT); });
  cv::Mat bgr;
  try {
    const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t*>(data));
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": " + e.what());
  }
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": OpenCV could not decode it");
  }
  status = check_dimensions(bgr.cols, bgr.rows, options, codec);
  if (!status.ok()) return status;
  allocate_rgb(bgr.cols, bgr.rows, out);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* src = bgr.ptr<uint8_t>(y);
    uint8_t* dst = out->pixels.data() + size_t{3} * static_cast<size_t>(bgr.cols) * y;
    for (int x = 0; x < bgr.cols; ++x, src += 3, dst += 3) {
      dst[0] = src[2];
      dst[1] = src[1];
      dst[2] = src[0];
    }
  }
  return RowStatus::Ok();
}

}  // namespace clipshard::image_internal
