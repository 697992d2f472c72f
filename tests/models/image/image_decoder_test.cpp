// decode_image_file / decode_image_bytes: each RowError class, Pillow's conversion rules for every
// PNG mode, CMYK JPEG, GIF first frames and the decompression-bomb guard. Test images are written
// here with the codec libraries themselves (libpng, giflib) or cut from the fixtures.
#include <gif_lib.h>
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "models/image/image_decoder.h"

namespace clipshard {
namespace {

using testing::fixtures;
using testing::TempDir;
using Bytes = std::vector<uint8_t>;

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

RowStatus decode(const Bytes& bytes, RgbImage* out, DecodeOptions options = {}) {
  return decode_image_bytes(bytes.data(), bytes.size(), options, out);
}

const uint8_t* pixel(const RgbImage& image, int x, int y) {
  return &image.pixels[3 * (static_cast<size_t>(y) * image.width + x)];
}

// ---------------------------------------------------------------------------------------------
// PNG writer (libpng): rows are given exactly as stored (big-endian for 16-bit samples).

struct PngSpec {
  PngSpec(int w, int h, int depth, int type) : width(w), height(h), bit_depth(depth), color_type(type) {}
  int width, height, bit_depth, color_type;
  std::vector<png_color> palette;
  Bytes trns;
  bool interlace = false;
};

void append_bytes(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}

Bytes write_png(const PngSpec& spec, const std::vector<Bytes>& rows) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng write failed";
    return {};
  }
  png_set_write_fn(png, &out, append_bytes, nullptr);
  png_set_check_for_invalid_index(png, 0);  // the palette test writes an index past PLTE on purpose
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) {
    png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
  }
  if (!spec.trns.empty()) {
    png_set_tRNS(png, info, spec.trns.data(), static_cast<int>(spec.trns.size()), nullptr);
  }
  png_write_info(png, info);
  std::vector<png_bytep> pointers;
  for (const Bytes& row : rows) pointers.push_back(const_cast<png_bytep>(row.data()));
  png_write_image(png, pointers.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

// A PNG signature + IHDR (+ IEND) with valid CRCs, no image data.
Bytes png_header_only(uint32_t width, uint32_t height) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto chunk = [&out](const char* type, const Bytes& data) {
    const uint32_t n = static_cast<uint32_t>(data.size());
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(n >> s));
    Bytes body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    out.insert(out.end(), body.begin(), body.end());
    const uint32_t crc = static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size())));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(crc >> s));
  };
  Bytes ihdr;
  for (uint32_t v : {width, height}) {
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<uint8_t>(v >> s));
  }
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, not interlaced
  chunk("IHDR", ihdr);
  chunk("IEND", {});
  return out;
}

// ---------------------------------------------------------------------------------------------
// GIF writer (giflib).

struct GifFrame {
  int left = 0, top = 0, width = 0, height = 0;
  std::vector<GifColorType> local_palette;  // empty: use the global one
  int transparent = -1;
  std::vector<uint8_t> indices;  // width * height
};

int append_gif(GifFileType* gif, const GifByteType* data, int n) {
  auto* out = static_cast<Bytes*>(gif->UserData);
  out->insert(out->end(), data, data + n);
  return n;
}

Bytes write_gif(int width, int height, const std::vector<GifColorType>& global,
                const std::vector<GifFrame>& frames) {
  Bytes out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, append_gif, &error);
  EXPECT_NE(gif, nullptr);
  EGifSetGifVersion(gif, true);
  ColorMapObject* global_map =
      global.empty() ? nullptr : GifMakeMapObject(static_cast<int>(global.size()), global.data());
  EXPECT_EQ(EGifPutScreenDesc(gif, width, height, 8, 0, global_map), GIF_OK);
  for (const GifFrame& frame : frames) {
    if (frame.transparent >= 0) {
      const uint8_t gce[4] = {1, 10, 0, static_cast<uint8_t>(frame.transparent)};
      EXPECT_EQ(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, gce), GIF_OK);
    }
    ColorMapObject* local =
        frame.local_palette.empty()
            ? nullptr
            : GifMakeMapObject(static_cast<int>(frame.local_palette.size()),
                               frame.local_palette.data());
    EXPECT_EQ(EGifPutImageDesc(gif, frame.left, frame.top, frame.width, frame.height, false, local),
              GIF_OK);
    std::vector<GifPixelType> row(frame.width);
    for (int y = 0; y < frame.height; ++y) {
      std::memcpy(row.data(), &frame.indices[static_cast<size_t>(y) * frame.width], frame.width);
      EXPECT_EQ(EGifPutLine(gif, row.data(), frame.width), GIF_OK);
    }
    if (local) GifFreeMapObject(local);
  }
  EXPECT_EQ(EGifCloseFile(gif, &error), GIF_OK);
  if (global_map) GifFreeMapObject(global_map);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Error classes.

TEST(ImageDecoderErrors, FixtureBrokenFiles) {
  const auto dir = fixtures() / "images";
  RgbImage image;
  EXPECT_EQ(decode_image_file(dir / "empty.jpg", {}, &image).code, RowError::kEmptyFile);
  EXPECT_EQ(decode_image_file(dir / "truncated.jpg", {}, &image).code, RowError::kTruncatedImage);
  EXPECT_EQ(decode_image_file(dir / "not_an_image.jpg", {}, &image).code, RowError::kNotAnImage);
  EXPECT_EQ(decode_image_file(dir / "missing.jpg", {}, &image).code, RowError::kFileNotFound);
  EXPECT_TRUE(image.pixels.empty());
}

TEST(ImageDecoderErrors, GeneratedFiles) {
  TempDir tmp;
  const Bytes jpeg = read_file(fixtures() / "images" / "photo_640x480.jpg");
  const Bytes png = read_file(fixtures() / "images" / "rgb_320x240.png");
  write_file(tmp.path() / "zero.jpg", {});
  write_file(tmp.path() / "cut.jpg", Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));
  write_file(tmp.path() / "cut.png", Bytes(png.begin(), png.begin() + png.size() / 2));
  const std::string html = "<!DOCTYPE html><html><body>404 Not Found</body></html>\n";
  write_file(tmp.path() / "page.jpg", Bytes(html.begin(), html.end()));
  std::filesystem::create_directories(tmp.path() / "directory.jpg");

  const std::vector<std::pair<std::string, RowError>> cases = {
      {"zero.jpg", RowError::kEmptyFile},         {"cut.jpg", RowError::kTruncatedImage},
      {"cut.png", RowError::kTruncatedImage},     {"page.jpg", RowError::kNotAnImage},
      {"directory.jpg", RowError::kIsDirectory},  {"nothing_here.png", RowError::kFileNotFound},
      {"no_such_dir/a.png", RowError::kFileNotFound},
  };
  for (const auto& [name, code] : cases) {
    RgbImage image;
    const RowStatus status = decode_image_file(tmp.path() / name, {}, &image);
    EXPECT_EQ(status.code, code) << name << ": " << status.message;
    EXPECT_FALSE(status.message.empty()) << name;
    EXPECT_EQ(image.width, 0) << name;
    EXPECT_TRUE(image.pixels.empty()) << name;
  }
}

TEST(ImageDecoderErrors, TruncationAnywhereIsNeverAPartialImage) {
  const Bytes jpeg = read_file(fixtures() / "images" / "progressive_500x375.jpg");
  const Bytes png = read_file(fixtures() / "images" / "palette_256x192.png");
  for (const Bytes* file : {&jpeg, &png}) {
    for (size_t cut : {size_t{1}, size_t{5}, size_t{40}, file->size() / 3, file->size() - 40}) {
      RgbImage image;
      const RowStatus status = decode_image_bytes(file->data(), cut, {}, &image);
      EXPECT_FALSE(status.ok()) << "cut at " << cut;
      EXPECT_TRUE(image.pixels.empty());
      if (cut > 100) {
        EXPECT_EQ(status.code, RowError::kTruncatedImage) << status.message;
      }
    }
  }
}

TEST(ImageDecoderErrors, RemotePathsAreRefusedWithoutAccess) {
  for (const char* path : {"http://example.com/a.jpg", "https://example.com/a.jpg",
                           "s3://bucket/key.png", "gs://bucket/key.png", "hf://datasets/x.jpg"}) {
    EXPECT_TRUE(is_remote_path(path)) << path;
    RgbImage image;
    EXPECT_EQ(decode_image_file(path, {}, &image).code, RowError::kRemotePath) << path;
  }
  for (const char* path : {"images/a.jpg", "/abs/a.jpg", "dir/x://y.jpg", "://x", "C:/a.jpg"}) {
    EXPECT_FALSE(is_remote_path(path)) << path;
  }
}

TEST(ImageDecoderErrors, CorruptAndUnsupported) {
  RgbImage image;
  // A CRC error in IHDR.
  Bytes png = read_file(fixtures() / "images" / "rgb_320x240.png");
  png[29] ^= 0xFF;
  EXPECT_EQ(decode(png, &image).code, RowError::kCorruptImage);
  // A JPEG whose frame header claims 0 components.
  Bytes jpeg = read_file(fixtures() / "images" / "photo_640x480.jpg");
  size_t sof = 2;
  while (sof + 1 < jpeg.size() && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  ASSERT_LT(sof + 10, jpeg.size());
  Bytes bad_components = jpeg;
  bad_components[sof + 9] = 0;
  EXPECT_EQ(decode(bad_components, &image).code, RowError::kCorruptImage);
  // 12-bit precision: libjpeg-turbo's 8-bit build cannot decode it (Pillow neither).
  Bytes twelve_bit = jpeg;
  twelve_bit[sof + 4] = 12;
  EXPECT_EQ(decode(twelve_bit, &image).code, RowError::kUnsupportedFormat);
  // HEIC container.
  const char heic[] = "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic";
  EXPECT_EQ(decode(Bytes(heic, heic + sizeof(heic) - 1), &image).code,
            RowError::kUnsupportedFormat);
  EXPECT_EQ(image.width, 0);
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs: the header alone decides, before any pixel memory exists.

TEST(ImageDecoderBomb, PngHeaderClaiming50000x50000) {
  RgbImage image;
  const RowStatus status = decode(png_header_only(50000, 50000), &image);
  EXPECT_EQ(status.code, RowError::kImageTooLarge) << status.message;
  EXPECT_EQ(image.pixels.capacity(), 0u) << status.message;
  // With a limit above its size the decoder goes on and finds no image data: the refusal above
  // came from the header alone.
  DecodeOptions generous;
  generous.max_pixels = int64_t{50000} * 50000;
  EXPECT_EQ(decode(png_header_only(50000, 50000), &image, generous).code,
            RowError::kCorruptImage);
}

TEST(ImageDecoderBomb, JpegGifAndLimits) {
  RgbImage image;
  Bytes jpeg = read_file(fixtures() / "images" / "photo_640x480.jpg");
  size_t sof = 2;
  while (!(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  Bytes huge = jpeg;
  huge[sof + 5] = huge[sof + 7] = 0xEA;  // 60000 x 60000
  huge[sof + 6] = huge[sof + 8] = 0x60;
  EXPECT_EQ(decode(huge, &image).code, RowError::kImageTooLarge);

  GifFrame frame;
  frame.width = frame.height = 2;
  frame.indices = {0, 1, 1, 0};
  Bytes gif = write_gif(2, 2, {{0, 0, 0}, {255, 255, 255}}, {frame});
  gif[6] = gif[7] = gif[8] = gif[9] = 0xFF;  // screen 65535 x 65535
  EXPECT_EQ(decode(gif, &image).code, RowError::kImageTooLarge);

  // Sides near 2^32 (PNM, TIFF and JPEG 2000 headers allow them) must not overflow the product.
  const std::string pnm = "P6 4294967295 4294967295 255\n";
  EXPECT_EQ(decode(Bytes(pnm.begin(), pnm.end()), &image).code, RowError::kImageTooLarge);

  DecodeOptions small;
  small.max_pixels = 640 * 480 - 1;
  EXPECT_EQ(decode(jpeg, &image, small).code, RowError::kImageTooLarge);
  small.max_pixels = 640 * 480;  // the limit itself is allowed, as in Pillow
  EXPECT_TRUE(decode(jpeg, &image, small).ok());
  EXPECT_EQ(DecodeOptions{}.max_pixels, 178956970);
}

// ---------------------------------------------------------------------------------------------
// Pillow's conversions to RGB.

TEST(ImageDecoderPng, SixteenBitGreyIsClampedNotScaled) {
  PngSpec spec{4, 1, 16, PNG_COLOR_TYPE_GRAY};
  const Bytes row = {0x00, 0x00, 0x00, 0x7F, 0x00, 0xFF, 0x12, 0x34};  // 0, 127, 255, 4660
  RgbImage image;
  ASSERT_TRUE(decode(write_png(spec, {row}), &image).ok());
  const uint8_t expected[4] = {0, 127, 255, 255};
  for (int x = 0; x < 4; ++x) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(pixel(image, x, 0)[c], expected[x]) << x;
  }
}

TEST(ImageDecoderPng, SixteenBitColourKeepsTheHighByte) {
  RgbImage image;
  const Bytes rgb = {0x12, 0xFF, 0xAB, 0x01, 0x00, 0x80};
  ASSERT_TRUE(decode(write_png(PngSpec{1, 1, 16, PNG_COLOR_TYPE_RGB}, {rgb}), &image).ok());
  EXPECT_EQ(Bytes(image.pixels.begin(), image.pixels.end()), (Bytes{0x12, 0xAB, 0x00}));
  const Bytes rgba = {0x34, 0x80, 0x56, 0x7F, 0x78, 0x00, 0x00, 0x00};
  ASSERT_TRUE(decode(write_png(PngSpec{1, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA}, {rgba}), &image).ok());
  EXPECT_EQ(image.pixels, (Bytes{0x34, 0x56, 0x78}));
  const Bytes la = {0x9A, 0xFF, 0x00, 0x00};
  ASSERT_TRUE(decode(write_png(PngSpec{1, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA}, {la}), &image).ok());
  EXPECT_EQ(image.pixels, (Bytes{0x9A, 0x9A, 0x9A}));
}

TEST(ImageDecoderPng, AlphaIsDroppedWithoutCompositing) {
  RgbImage image;
  const Bytes rgba = {10, 20, 30, 0, 40, 50, 60, 128};
  ASSERT_TRUE(decode(write_png(PngSpec{2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA}, {rgba}), &image).ok());
  EXPECT_EQ(image.pixels, (Bytes{10, 20, 30, 40, 50, 60}));
  const Bytes la = {200, 0, 7, 255};
  ASSERT_TRUE(decode(write_png(PngSpec{2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA}, {la}), &image).ok());
  EXPECT_EQ(image.pixels, (Bytes{200, 200, 200, 7, 7, 7}));
}

TEST(ImageDecoderPng, LowBitDepthGreyScalesLikePillow) {
  RgbImage image;
  ASSERT_TRUE(decode(write_png(PngSpec{8, 1, 1, PNG_COLOR_TYPE_GRAY}, {{0xA5}}), &image).ok());
  const uint8_t bits[8] = {1, 0, 1, 0, 0, 1, 0, 1};
  for (int x = 0; x < 8; ++x) EXPECT_EQ(pixel(image, x, 0)[1], bits[x] ? 255 : 0);
  ASSERT_TRUE(decode(write_png(PngSpec{4, 1, 2, PNG_COLOR_TYPE_GRAY}, {{0x1B}}), &image).ok());
  for (int x = 0; x < 4; ++x) EXPECT_EQ(pixel(image, x, 0)[0], x * 85);
  ASSERT_TRUE(decode(write_png(PngSpec{2, 1, 4, PNG_COLOR_TYPE_GRAY}, {{0x3F}}), &image).ok());
  EXPECT_EQ(pixel(image, 0, 0)[2], 3 * 17);
  EXPECT_EQ(pixel(image, 1, 0)[2], 255);
}

TEST(ImageDecoderPng, PaletteExpandsIgnoringTransparencyWithPillowsRamp) {
  PngSpec spec{4, 2, 8, PNG_COLOR_TYPE_PALETTE};
  spec.palette = {{255, 0, 0}, {0, 255, 0}};
  spec.trns = {0, 128};
  // Index 7 lies past the two PLTE entries: Pillow's palette keeps its grey ramp there.
  RgbImage image;
  ASSERT_TRUE(decode(write_png(spec, {{0, 1, 7, 0}, {1, 1, 0, 0}}), &image).ok());
  EXPECT_EQ(Bytes(pixel(image, 0, 0), pixel(image, 0, 0) + 3), (Bytes{255, 0, 0}));
  EXPECT_EQ(Bytes(pixel(image, 1, 0), pixel(image, 1, 0) + 3), (Bytes{0, 255, 0}));
  EXPECT_EQ(Bytes(pixel(image, 2, 0), pixel(image, 2, 0) + 3), (Bytes{7, 7, 7}));
  EXPECT_EQ(Bytes(pixel(image, 0, 1), pixel(image, 0, 1) + 3), (Bytes{0, 255, 0}));

  PngSpec packed{5, 1, 2, PNG_COLOR_TYPE_PALETTE};
  packed.palette = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}};
  ASSERT_TRUE(decode(write_png(packed, {{0x1B, 0xC0}}), &image).ok());  // 0 1 2 3 | 3
  EXPECT_EQ(image.pixels, (Bytes{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 10, 11, 12}));
}

TEST(ImageDecoderPng, InterlacedEqualsProgressiveOrder) {
  PngSpec spec{13, 11, 8, PNG_COLOR_TYPE_RGB};
  std::vector<Bytes> rows(11, Bytes(39));
  for (int y = 0; y < 11; ++y) {
    for (int i = 0; i < 39; ++i) rows[y][i] = static_cast<uint8_t>(y * 31 + i * 7);
  }
  RgbImage plain, interlaced;
  ASSERT_TRUE(decode(write_png(spec, rows), &plain).ok());
  spec.interlace = true;
  ASSERT_TRUE(decode(write_png(spec, rows), &interlaced).ok());
  EXPECT_EQ(plain.pixels, interlaced.pixels);
  EXPECT_EQ(plain.pixels[3 * 13 * 10 + 5], rows[10][5]);
}

TEST(ImageDecoderPng, FixtureModes) {
  RgbImage image;
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "gray16_200x150.png", {}, &image).ok());
  EXPECT_EQ(image.width, 200);
  size_t white = 0;
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    ASSERT_EQ(image.pixels[i], image.pixels[i + 1]);
    ASSERT_EQ(image.pixels[i], image.pixels[i + 2]);
    white += image.pixels[i] == 255;
  }
  EXPECT_GT(white, image.pixels.size() / 3 / 2);  // clamped: mostly white (README)
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "bilevel_150x100.png", {}, &image).ok());
  for (uint8_t v : image.pixels) ASSERT_TRUE(v == 0 || v == 255);
}

// ---------------------------------------------------------------------------------------------
// JPEG.

inline int muldiv255(int a, int b) {
  const int tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

TEST(ImageDecoderJpeg, CmykFollowsPillowsRule) {
  const Bytes file = read_file(fixtures() / "images" / "cmyk_300x400.jpg");
  RgbImage image;
  ASSERT_TRUE(decode(file, &image).ok());
  ASSERT_EQ(image.width, 300);
  ASSERT_EQ(image.height, 400);

  // Raw CMYK straight from libjpeg; Pillow reads it inverted ("CMYK;I") and converts with
  // R = MULDIV255(255 - C, 255 - K) (fixtures/README.md), i.e. MULDIV255(c, k) on libjpeg's values.
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, file.data(), file.size());
  ASSERT_EQ(jpeg_read_header(&cinfo, TRUE), JPEG_HEADER_OK);
  ASSERT_EQ(cinfo.num_components, 4);
  cinfo.out_color_space = JCS_CMYK;
  jpeg_start_decompress(&cinfo);
  Bytes row(4 * cinfo.output_width);
  size_t mismatches = 0;
  while (cinfo.output_scanline < cinfo.output_height) {
    const int y = static_cast<int>(cinfo.output_scanline);
    JSAMPROW p = row.data();
    jpeg_read_scanlines(&cinfo, &p, 1);
    for (int x = 0; x < 300; ++x) {
      const uint8_t* cmyk = &row[4 * x];
      for (int c = 0; c < 3; ++c) mismatches += pixel(image, x, y)[c] != muldiv255(cmyk[c], cmyk[3]);
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  EXPECT_EQ(mismatches, 0u);
}

TEST(ImageDecoderJpeg, GreyAndExifAreNotTransformed) {
  RgbImage image;
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "gray_400x300.jpg", {}, &image).ok());
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    ASSERT_EQ(image.pixels[i], image.pixels[i + 1]);
    ASSERT_EQ(image.pixels[i], image.pixels[i + 2]);
  }
  // Orientation 6 would rotate to 300x400: Pillow's open never does.
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "exif_orient6_400x300.jpg", {}, &image).ok());
  EXPECT_EQ(image.width, 400);
  EXPECT_EQ(image.height, 300);
}

TEST(ImageDecoderJpeg, FormatComesFromTheBytesNotTheName) {
  TempDir tmp;
  std::filesystem::copy_file(fixtures() / "images" / "rgb_320x240.png", tmp.path() / "photo.jpg");
  RgbImage image;
  ASSERT_TRUE(decode_image_file(tmp.path() / "photo.jpg", {}, &image).ok());
  EXPECT_EQ(image.width, 320);
  uint8_t header[12] = {0xFF, 0xD8, 0xFF};
  EXPECT_EQ(detect_image_format(header, 3), ImageFormat::kJpeg);
  EXPECT_EQ(detect_image_format(header, 2), ImageFormat::kUnknown);
  std::memcpy(header, "RIFF\0\0\0\0WEBP", 12);
  EXPECT_EQ(detect_image_format(header, 12), ImageFormat::kWebp);
}

TEST(ImageDecoderJpeg, ReducedDecodeScalesByPowersOfTwo) {
  const auto file = fixtures() / "images" / "large_3000x2000.jpg";
  DecodeOptions options;
  options.reduced_decode = true;
  RgbImage image;
  options.target_short_side = 224;  // default margin 1: 2000 / 8 = 250 >= 224
  ASSERT_TRUE(decode_image_file(file, options, &image).ok());
  EXPECT_EQ(image.width, 375);
  EXPECT_EQ(image.height, 250);
  options.reduced_margin = 2.0;  // 2000 / 4 = 500 >= 448, 2000 / 8 = 250 is not
  ASSERT_TRUE(decode_image_file(file, options, &image).ok());
  EXPECT_EQ(image.width, 750);
  EXPECT_EQ(image.height, 500);
  options.target_short_side = 336;  // 2000 / 2 = 1000 >= 672
  ASSERT_TRUE(decode_image_file(file, options, &image).ok());
  EXPECT_EQ(image.width, 1500);
  options.reduced_margin = 1.0;  // 2000 / 4 = 500 >= 336, 2000 / 8 = 250 is not
  ASSERT_TRUE(decode_image_file(file, options, &image).ok());
  EXPECT_EQ(image.width, 750);
  options.target_short_side = 1001;  // no reduction keeps 1001
  ASSERT_TRUE(decode_image_file(file, options, &image).ok());
  EXPECT_EQ(image.width, 3000);
  // Other formats ignore it.
  options.target_short_side = 10;
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "rgb_320x240.png", options, &image).ok());
  EXPECT_EQ(image.width, 320);
}

TEST(ImageDecoderJpeg, ReducedScaleChoice) {
  DecodeOptions options;
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 3000, options), 1);  // off by default
  options.reduced_decode = true;
  options.target_short_side = 224;
  ASSERT_EQ(options.reduced_margin, 1.0);
  // libjpeg rounds the scaled size up: ceil(1785 / 8) = 224, ceil(1784 / 8) = 223.
  EXPECT_EQ(jpeg_reduced_scale_denominator(1792, 1792, options), 8);
  EXPECT_EQ(jpeg_reduced_scale_denominator(2400, 1785, options), 8);
  EXPECT_EQ(jpeg_reduced_scale_denominator(2400, 1784, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1784, 2400, options), 4);  // the shorter side counts
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 1000, options), 4);  // panorama: 250 at 1/4
  EXPECT_EQ(jpeg_reduced_scale_denominator(1600, 1200, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1000, 893, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1000, 892, options), 2);
  EXPECT_EQ(jpeg_reduced_scale_denominator(640, 480, options), 2);
  EXPECT_EQ(jpeg_reduced_scale_denominator(640, 447, options), 2);  // ceil(447 / 2) = 224
  EXPECT_EQ(jpeg_reduced_scale_denominator(640, 446, options), 1);
  EXPECT_EQ(jpeg_reduced_scale_denominator(300, 200, options), 1);
  EXPECT_EQ(jpeg_reduced_scale_denominator(100000, 100000, options), 8);  // 1/8 is the strongest
  options.target_short_side = 336;  // ViT-L/14@336, Long-CLIP
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 2688, options), 8);
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 2680, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1600, 1200, options), 2);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1000, 671, options), 2);  // ceil(671 / 2) = 336
  EXPECT_EQ(jpeg_reduced_scale_denominator(1000, 669, options), 1);
  options.target_short_side = 224;
  options.reduced_margin = 2.0;  // decode to at least 448
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 3584, options), 8);
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 3000, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1600, 1200, options), 2);
  EXPECT_EQ(jpeg_reduced_scale_denominator(1000, 800, options), 1);
  options.reduced_margin = 1.5;  // 336
  EXPECT_EQ(jpeg_reduced_scale_denominator(3000, 2000, options), 4);
  EXPECT_EQ(jpeg_reduced_scale_denominator(4000, 2688, options), 8);
  EXPECT_EQ(jpeg_reduced_scale_denominator(0, 100, options), 1);  // nothing to scale
}

TEST(ImageDecoderJpeg, ReducedDecodeSizeIsWhatTheChoiceSays) {
  DecodeOptions options;
  options.reduced_decode = true;
  RgbImage exact, image;
  for (const char* name : {"large_3000x2000.jpg", "photo_640x480.jpg", "panorama_1024x200.jpg",
                           "progressive_500x375.jpg", "cmyk_300x400.jpg", "gray_400x300.jpg"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(decode_image_file(fixtures() / "images" / name, {}, &exact).ok());
    for (int target : {16, 100, 224, 336}) {
      options.target_short_side = target;
      ASSERT_TRUE(decode_image_file(fixtures() / "images" / name, options, &image).ok());
      const int d = jpeg_reduced_scale_denominator(exact.width, exact.height, options);
      EXPECT_EQ(image.width, (exact.width + d - 1) / d);
      EXPECT_EQ(image.height, (exact.height + d - 1) / d);
      EXPECT_GE(std::min(image.width, image.height), std::min({exact.width, exact.height, target}));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GIF, WebP, BMP.

TEST(ImageDecoderGif, FirstFrameOfAnAnimation) {
  const std::vector<GifColorType> global = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  GifFrame first;
  first.width = 4;
  first.height = 3;
  first.indices = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
  GifFrame second = first;
  second.indices.assign(12, 0);
  second.local_palette = {{9, 9, 9}, {8, 8, 8}};
  RgbImage image;
  ASSERT_TRUE(decode(write_gif(4, 3, global, {first, second}), &image).ok());
  ASSERT_EQ(image.width, 4);
  ASSERT_EQ(image.height, 3);
  for (int i = 0; i < 12; ++i) {
    const GifColorType& c = global[first.indices[i]];
    EXPECT_EQ(Bytes(&image.pixels[3 * i], &image.pixels[3 * i + 3]), (Bytes{c.Red, c.Green, c.Blue}));
  }
}

TEST(ImageDecoderGif, OffsetFrameLocalPaletteAndTransparentFill) {
  const std::vector<GifColorType> global = {{10, 10, 10}, {20, 20, 20}, {30, 30, 30}, {40, 40, 40}};
  GifFrame frame;
  frame.left = 2;
  frame.top = 1;
  frame.width = 2;
  frame.height = 2;
  frame.local_palette = {{100, 0, 0}, {0, 100, 0}, {0, 0, 100}, {50, 50, 50}};
  frame.indices = {0, 1, 2, 3};
  frame.transparent = 2;
  RgbImage image;
  ASSERT_TRUE(decode(write_gif(5, 4, global, {frame}), &image).ok());
  ASSERT_EQ(image.width, 5);
  // Outside the frame: the transparent index (2), through the frame's palette.
  EXPECT_EQ(Bytes(pixel(image, 0, 0), pixel(image, 0, 0) + 3), (Bytes{0, 0, 100}));
  EXPECT_EQ(Bytes(pixel(image, 2, 1), pixel(image, 2, 1) + 3), (Bytes{100, 0, 0}));
  EXPECT_EQ(Bytes(pixel(image, 3, 2), pixel(image, 3, 2) + 3), (Bytes{50, 50, 50}));
  // Transparent pixels inside the frame keep their colour (convert("RGB") ignores transparency).
  EXPECT_EQ(Bytes(pixel(image, 2, 2), pixel(image, 2, 2) + 3), (Bytes{0, 0, 100}));

  // Without transparency the outside is index 0; a frame past the screen grows the image.
  frame.transparent = -1;
  frame.left = 4;
  ASSERT_TRUE(decode(write_gif(5, 4, global, {frame}), &image).ok());
  EXPECT_EQ(image.width, 6);
  EXPECT_EQ(Bytes(pixel(image, 0, 0), pixel(image, 0, 0) + 3), (Bytes{100, 0, 0}));
}

TEST(ImageDecoderGif, TruncatedFrame) {
  GifFrame frame;
  frame.width = frame.height = 64;
  frame.indices.resize(64 * 64);
  for (size_t i = 0; i < frame.indices.size(); ++i) frame.indices[i] = (i * 7919) % 4;
  const Bytes gif = write_gif(64, 64, {{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}}, {frame});
  RgbImage image;
  ASSERT_TRUE(decode(gif, &image).ok());
  const Bytes cut(gif.begin(), gif.begin() + gif.size() / 2);
  EXPECT_EQ(decode(cut, &image).code, RowError::kTruncatedImage);
}

TEST(ImageDecoderOther, WebpAndBmpFixtures) {
  RgbImage image;
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "lossy_300x200.webp", {}, &image).ok());
  EXPECT_EQ(image.width, 300);
  EXPECT_EQ(image.height, 200);
  const Bytes webp = read_file(fixtures() / "images" / "lossy_300x200.webp");
  EXPECT_EQ(decode(Bytes(webp.begin(), webp.begin() + webp.size() / 2), &image).code,
            RowError::kTruncatedImage);
  Bytes bmp = read_file(fixtures() / "images" / "rgb_250x170.bmp");
  if (image_decoder_has_opencv()) {
    ASSERT_TRUE(decode_image_file(fixtures() / "images" / "rgb_250x170.bmp", {}, &image).ok());
    EXPECT_EQ(image.width, 250);
    EXPECT_EQ(image.height, 170);
  } else {  // the lean build: a row error, and no pixels
    EXPECT_EQ(decode(bmp, &image).code, RowError::kUnsupportedFormat);
    EXPECT_EQ(image.width, 0);
  }
  bmp[18] = bmp[19] = bmp[20] = 0xFF;  // width 16777215
  bmp[22] = bmp[23] = 0xFF;
  EXPECT_EQ(decode(bmp, &image).code, RowError::kImageTooLarge);  // from the header, either build
}

}  // namespace
}  // namespace clipshard
