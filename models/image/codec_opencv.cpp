// BMP, TIFF, PNM and JPEG 2000 through OpenCV's imdecode (IMREAD_COLOR |
// IMREAD_IGNORE_ORIENTATION: 8-bit BGR, no EXIF rotation, alpha dropped), after reading the
// size from the header ourselves (codec_other_headers.cpp) so that a decompression bomb is refused
// before OpenCV allocates.
// These decode exactly as Pillow does for 8-bit images (notes/opencv-vs-pil-decoding.md); OpenCV
// does not tell a truncated file from a corrupt one, so both are kCorruptImage here.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "models/image/codecs.h"

namespace clipshard {

bool image_decoder_has_opencv() { return true; }

namespace image_internal {

RowStatus decode_with_opencv(const uint8_t* data, size_t size, ImageFormat format,
                             const DecodeOptions& options, RgbImage* out) {
  const char* codec = other_format_codec(format);
  RowStatus status = check_other_format_header(data, size, format, options);
  if (!status.ok()) return status;

  if (size > static_cast<size_t>(INT_MAX)) {
    return RowStatus::Error(RowError::kImageTooLarge, std::string(codec) + ": file over 2 GiB");
  }
  // OpenCV prints decoder warnings to stderr; here a bad file is a per-row record, so keep quiet.
  static std::once_flag quiet;
  std::call_once(quiet,
                 [] { cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT); });
  cv::Mat bgr;
  try {
    const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t*>(data));
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    return RowStatus::Error(RowError::kCorruptImage, std::string(codec) + ": " + e.what());
  }
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    return RowStatus::Error(RowError::kCorruptImage,
                            std::string(codec) + ": OpenCV could not decode it");
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

}  // namespace image_internal
}  // namespace clipshard
