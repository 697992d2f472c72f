// Width and height from the headers of the formats OpenCV decodes (BMP, TIFF, PNM, JPEG 2000), read
// here rather than by OpenCV so that a decompression bomb is refused before anything allocates,
// and so that a build without OpenCV still tells an oversized image from an unsupported one.
#include <cstdlib>
#include <cstring>
#include <string>

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

uint32_t read_u32(const uint8_t* p, bool big_endian) {
  return big_endian
             ? (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]
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
    if (type == 3)
      value = read_u16(e + 8, big);  // SHORT
    else if (type == 4)
      value = read_u32(e + 8, big);  // LONG
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

const char* other_format_codec(ImageFormat format) {
  switch (format) {
    case ImageFormat::kBmp:
      return "bmp";
    case ImageFormat::kTiff:
      return "tiff";
    case ImageFormat::kPnm:
      return "pnm";
    case ImageFormat::kJpeg2000:
      return "jpeg2000";
    default:
      return "opencv";
  }
}

RowStatus check_other_format_header(const uint8_t* data, size_t size, ImageFormat format,
                                    const DecodeOptions& options) {
  int64_t width = -1, height = -1;
  bool known = false;
  const char* codec = other_format_codec(format);
  switch (format) {
    case ImageFormat::kBmp:
      known = bmp_size(data, size, &width, &height);
      break;
    case ImageFormat::kTiff:
      known = tiff_size(data, size, &width, &height);
      break;
    case ImageFormat::kPnm:
      known = pnm_size(data, size, &width, &height);
      break;
    case ImageFormat::kJpeg2000:
      known = j2k_size(data, size, &width, &height) || jp2_size(data, size, &width, &height);
      break;
    default:
      break;
  }
  if (!known) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": unreadable header");
  }
  return check_dimensions(width, height, options, codec);
}

}  // namespace clipshard::image_internal
