// JPEG through libjpeg-turbo, as Pillow 9.4's JpegDecode.c drives it: default decompression
// settings (ISLOW IDCT, fancy upsampling), the colour space libjpeg infers, 1 and 3 components
// converted to RGB by libjpeg, 4 components (CMYK / YCCK) decoded to CMYK and converted with
// Pillow's rules. Errors longjmp out of libjpeg (never exit()); the only warning that matters is
// "Premature end of JPEG file" while pixel rows are still missing: Pillow raises "image file is
// truncated" there.
// jpeglib.h needs FILE and size_t declared first: it must stay after <cstdio>.
// clang-format off
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>
// clang-format on

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

// Progressive files can hold any number of scans, each one a full pass over the coefficients; a
// crafted file with thousands of them costs minutes of CPU. Real encoders write about ten.
constexpr int kMaxScans = 1000;

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg casts cinfo->err to this struct
  std::jmp_buf jump;
  bool hit_eof = false;         // the source ran out of data (libjpeg inserted a fake EOI)
  bool too_many_scans = false;  // set by the progress monitor just before it aborts
  int error_code = 0;
  char message[JMSG_LENGTH_MAX] = {0};
};

[[noreturn]] void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  err->error_code = cinfo->err->msg_code;
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->hit_eof = true;
  cinfo->err->num_warnings++;
}

void on_output_message(j_common_ptr) {}  // never print

void on_progress(j_common_ptr cinfo) {
  auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->is_decompressor && dinfo->input_scan_number > kMaxScans) {
    reinterpret_cast<JpegErrorManager*>(cinfo->err)->too_many_scans = true;
    ERREXIT(cinfo, JERR_NOT_COMPILED);  // any code: too_many_scans says what happened
  }
}

// MULDIV255 from Pillow's ImPlatform.h: round(a * b / 255) in integers.
inline int muldiv255(int a, int b) {
  const int tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

// Pillow reads every 4-component JPEG as "CMYK;I" (inverted, Adobe polarity), then cmyk2rgb:
// nk = 255 - K, R = nk - MULDIV255(C, nk). With C = 255 - c and K = 255 - k from libjpeg:
void cmyk_row_to_rgb(const uint8_t* in, int width, uint8_t* out) {
  for (int x = 0; x < width; ++x, in += 4, out += 3) {
    const int nk = in[3];
    out[0] = static_cast<uint8_t>(nk - muldiv255(255 - in[0], nk));
    out[1] = static_cast<uint8_t>(nk - muldiv255(255 - in[1], nk));
    out[2] = static_cast<uint8_t>(nk - muldiv255(255 - in[2], nk));
  }
}

RowStatus error_status(const JpegErrorManager& err, bool rows_complete) {
  std::string message = std::string("libjpeg: ") + err.message;
  if (err.too_many_scans) {
    return RowStatus::Error(RowError::kCorruptImage,
                            "libjpeg: more than " + std::to_string(kMaxScans) + " scans");
  }
  if (err.hit_eof && !rows_complete) {
    return RowStatus::Error(RowError::kTruncatedImage, "libjpeg: Premature end of JPEG file");
  }
  switch (err.error_code) {
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_ARITH_NOTIMPL:
      return RowStatus::Error(RowError::kUnsupportedFormat, message);
    default:
      return RowStatus::Error(RowError::kCorruptImage, message);
  }
}

}  // namespace

RowStatus decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                      RgbImage* out) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_progress_mgr progress;
  // Everything with a destructor lives before setjmp: longjmp must not skip one.
  std::vector<uint8_t> cmyk_row;
  RowStatus status;

  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  progress.progress_monitor = on_progress;

  if (setjmp(err.jump)) {
    const bool rows_complete = out->height > 0 && cinfo.output_scanline >= cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    return error_status(err, rows_complete);
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (err.hit_eof) {
    jpeg_destroy_decompress(&cinfo);
    return RowStatus::Error(RowError::kTruncatedImage, "libjpeg: Premature end of JPEG file");
  }

  status = check_dimensions(cinfo.image_width, cinfo.image_height, options, "jpeg");
  if (!status.ok()) {
    jpeg_destroy_decompress(&cinfo);
    return status;
  }
  const int components = cinfo.num_components;
  if (components == 1 || components == 3) {
    cinfo.out_color_space = JCS_RGB;  // libjpeg replicates grey exactly as Pillow's L -> RGB does
  } else if (components == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    jpeg_destroy_decompress(&cinfo);
    return RowStatus::Error(RowError::kUnsupportedFormat,
                            "jpeg: cannot handle " + std::to_string(components) + "-layer images");
  }
  if (options.reduced_decode) {
    const int denom =
        jpeg_reduced_scale_denominator(cinfo.image_width, cinfo.image_height, options);
    if (denom > 1) {
      cinfo.scale_num = 1;
      cinfo.scale_denom = static_cast<unsigned>(denom);
    }
    if (options.reduced_fast_dct) {
      cinfo.dct_method = JDCT_IFAST;
      cinfo.do_fancy_upsampling = FALSE;
    }
  }

  jpeg_start_decompress(&cinfo);
  const int width = static_cast<int>(cinfo.output_width);
  const int height = static_cast<int>(cinfo.output_height);
  allocate_rgb(width, height, out);
  if (components == 4) cmyk_row.resize(size_t{4} * static_cast<size_t>(width));
  const size_t stride = size_t{3} * static_cast<size_t>(width);
  while (cinfo.output_scanline < cinfo.output_height) {
    const size_t y = cinfo.output_scanline;
    JSAMPROW row = components == 4 ? cmyk_row.data() : out->pixels.data() + y * stride;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
    if (components == 4) cmyk_row_to_rgb(cmyk_row.data(), width, out->pixels.data() + y * stride);
  }
  // Running out of data before the last row is Pillow's "image file is truncated"; after it (a
  // missing EOI marker, say) Pillow keeps the image, and so do we.
  if (err.hit_eof) {
    jpeg_destroy_decompress(&cinfo);
    return RowStatus::Error(RowError::kTruncatedImage, "libjpeg: Premature end of JPEG file");
  }
  // Reading to EOI may still raise (garbage after the image): Pillow ignores that once every row
  // is decoded, so skip it; jpeg_abort releases what start_decompress allocated.
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return RowStatus::Ok();
}

}  // namespace clipshard::image_internal

namespace clipshard {

int jpeg_reduced_scale_denominator(int64_t width, int64_t height, const DecodeOptions& options) {
  if (!options.reduced_decode || width < 1 || height < 1) return 1;
  const int64_t short_side = width < height ? width : height;
  const double needed =
      options.reduced_margin * (options.target_short_side > 0 ? options.target_short_side : 1);
  for (int denom : {8, 4, 2}) {
    // libjpeg's scaled output size is jdiv_round_up(size, denom).
    if (static_cast<double>((short_side + denom - 1) / denom) >= needed) return denom;
  }
  return 1;
}

}  // namespace clipshard
