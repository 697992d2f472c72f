// PNG through libpng, converted to RGB the way Pillow 9.4 opens and converts each PNG mode:
//   grey 1/2/4/8 bit ("1", "L;2", "L;4", "L")  -> scaled to 0..255, replicated (libpng's expansion
//                                                 uses the same 0x55 / 0x11 / 0xFF factors)
//   grey 16 bit ("I;16B" -> mode I)             -> value clamped to 0..255 (not rescaled)
//   grey+alpha, RGB, RGBA, 8 or 16 bit          -> alpha dropped (kept apart in RgbImage::alpha),
//                                                 16-bit samples keep the high byte
//   palette 1..8 bit                            -> expanded with the PLTE entries; indices past the
//                                                 end of PLTE get Pillow's default grey ramp
//                                                 (i,i,i)
// tRNS is ignored (convert("RGB") drops transparency). Errors longjmp out of libpng; running out
// of bytes before the last row is kTruncatedImage. Chunks after the image data are not read
// (Pillow stops at the last row too), and a bad CRC in an ancillary chunk is an error, as in
// Pillow's PngStream.crc.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <string>
#include <vector>

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

struct PngReader {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  bool truncated = false;
  char message[256] = {0};
};

void read_bytes(png_structp png, png_bytep dst, png_size_t n) {
  auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
  if (reader->size - reader->pos < n) {
    reader->truncated = true;
    png_error(png, "unexpected end of data");
  }
  std::memcpy(dst, reader->data + reader->pos, n);
  reader->pos += n;
}

[[noreturn]] void on_error(png_structp png, png_const_charp message) {
  auto* reader = static_cast<PngReader*>(png_get_error_ptr(png));
  std::strncpy(reader->message, message ? message : "error", sizeof(reader->message) - 1);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

enum class Conversion {
  kDirect,   // libpng already delivers 8-bit RGB
  kPalette,  // 8-bit indices -> Pillow palette
  kGrey16,   // big-endian 16-bit grey -> clamp to 255
  kAlpha,    // 8-bit RGBA (RGBA, or grey+alpha expanded) -> RGB + the alpha plane
};

// Pillow's palette: the PLTE entries over a 0..255 grey ramp (ImagingPaletteNew).
void build_palette(png_structp png, png_infop info, uint8_t table[256][3]) {
  for (int i = 0; i < 256; ++i) table[i][0] = table[i][1] = table[i][2] = static_cast<uint8_t>(i);
  png_colorp entries = nullptr;
  int count = 0;
  if (png_get_PLTE(png, info, &entries, &count) & PNG_INFO_PLTE) {
    for (int i = 0; i < count && i < 256; ++i) {
      table[i][0] = entries[i].red;
      table[i][1] = entries[i].green;
      table[i][2] = entries[i].blue;
    }
  }
}

void convert_row(Conversion conversion, const uint8_t* in, int width, const uint8_t (*palette)[3],
                 uint8_t* out, uint8_t* alpha) {
  if (conversion == Conversion::kAlpha) {
    for (int x = 0; x < width; ++x, out += 3, in += 4) {
      std::memcpy(out, in, 3);
      alpha[x] = in[3];
    }
  } else if (conversion == Conversion::kPalette) {
    for (int x = 0; x < width; ++x, out += 3) std::memcpy(out, palette[in[x]], 3);
  } else {  // kGrey16
    for (int x = 0; x < width; ++x, out += 3) {
      const unsigned v = (unsigned{in[2 * x]} << 8) | in[2 * x + 1];
      out[0] = out[1] = out[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

}  // namespace

RowStatus decode_png(const uint8_t* data, size_t size, const DecodeOptions& options,
                     RgbImage* out) {
  // IHDR is the first chunk: refuse a bomb from its 24 bytes, before libpng reads anything else.
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [data](size_t at) {
      return (uint32_t{data[at]} << 24) | (uint32_t{data[at + 1]} << 16) |
             (uint32_t{data[at + 2]} << 8) | data[at + 3];
    };
    const int64_t width = be32(16), height = be32(20);
    if (width > 0 && height > 0) {
      RowStatus early = check_dimensions(width, height, options, "png");
      if (!early.ok()) return early;
    }
  }
  PngReader reader;
  reader.data = data;
  reader.size = size;
  // Everything with a destructor lives before setjmp: longjmp must not skip one.
  std::vector<uint8_t> rows;  // converted rows (palette / 16-bit grey) or the interlaced image
  std::vector<png_bytep> row_pointers;
  RowStatus status;
  uint8_t palette[256][3];

  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, on_error, on_warning);
  if (!png) return RowStatus::Error(RowError::kInternal, "libpng: cannot create read struct");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return RowStatus::Error(RowError::kInternal, "libpng: cannot create info struct");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (reader.truncated) {
      return RowStatus::Error(RowError::kTruncatedImage, "libpng: image file is truncated");
    }
    return RowStatus::Error(RowError::kCorruptImage, std::string("libpng: ") + reader.message);
  }
  png_set_read_fn(png, &reader, read_bytes);
  // Our own pixel limit applies (check_dimensions); libpng's default caps width and height at
  // 1,000,000 each, which Pillow does not.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  status = check_dimensions(width, height, options, "png");
  if (!status.ok()) {
    png_destroy_read_struct(&png, &info, nullptr);
    return status;
  }

  Conversion conversion = Conversion::kDirect;
  switch (color_type) {
    case PNG_COLOR_TYPE_PALETTE:
      conversion = Conversion::kPalette;
      if (bit_depth < 8) png_set_packing(png);
      build_palette(png, info, palette);
      break;
    case PNG_COLOR_TYPE_GRAY:
      if (bit_depth == 16) {
        conversion = Conversion::kGrey16;
      } else {
        if (bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        png_set_gray_to_rgb(png);
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      conversion = Conversion::kAlpha;
      png_set_strip_16(png);
      png_set_gray_to_rgb(png);
      break;
    case PNG_COLOR_TYPE_RGB:
      png_set_strip_16(png);
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      conversion = Conversion::kAlpha;
      png_set_strip_16(png);
      break;
    default:
      png_destroy_read_struct(&png, &info, nullptr);
      return RowStatus::Error(RowError::kCorruptImage, "png: unknown colour type");
  }
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);

  const int w = static_cast<int>(width);
  const int h = static_cast<int>(height);
  allocate_rgb(w, h, out);
  if (conversion == Conversion::kAlpha) out->alpha.resize(static_cast<size_t>(w) * h);
  // Row y of the alpha plane; null for images without one (never an offset from a null pointer).
  auto alpha_row = [&](int y) -> uint8_t* {
    return out->alpha.empty() ? nullptr : out->alpha.data() + static_cast<size_t>(y) * w;
  };
  const size_t stride = size_t{3} * static_cast<size_t>(w);
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (conversion == Conversion::kDirect && row_bytes != stride) {
    png_destroy_read_struct(&png, &info, nullptr);
    return RowStatus::Error(RowError::kInternal, "libpng: unexpected row size");
  }

  if (passes > 1) {
    // Interlaced: libpng fills the whole image over its passes.
    uint8_t* base = out->pixels.data();
    if (conversion != Conversion::kDirect) {
      rows.resize(row_bytes * static_cast<size_t>(h));
      base = rows.data();
    }
    row_pointers.resize(static_cast<size_t>(h));
    for (int y = 0; y < h; ++y) row_pointers[y] = base + static_cast<size_t>(y) * row_bytes;
    png_read_image(png, row_pointers.data());
    if (conversion != Conversion::kDirect) {
      for (int y = 0; y < h; ++y) {
        convert_row(conversion, row_pointers[y], w, palette, out->pixels.data() + y * stride,
                    alpha_row(y));
      }
    }
  } else {
    if (conversion != Conversion::kDirect) rows.resize(row_bytes);
    for (int y = 0; y < h; ++y) {
      uint8_t* target = out->pixels.data() + static_cast<size_t>(y) * stride;
      if (conversion == Conversion::kDirect) {
        png_read_row(png, target, nullptr);
      } else {
        png_read_row(png, rows.data(), nullptr);
        convert_row(conversion, rows.data(), w, palette, target, alpha_row(y));
      }
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return RowStatus::Ok();
}

}  // namespace clipshard::image_internal
