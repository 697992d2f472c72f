// BMP, TIFF, PNM and JPEG 2000 in a build without OpenCV (CLIPSHARD_WITH_OPENCV=OFF, the lean GPU
// build of docs/GPU.md): the header is still read, so a bomb or a broken header gets the same
// record as with OpenCV; a readable image is an unsupported_format row, never a crash.
#include <string>

#include "models/image/codecs.h"

namespace clipshard {

bool image_decoder_has_opencv() { return false; }

namespace image_internal {

RowStatus decode_with_opencv(const uint8_t* data, size_t size, ImageFormat format,
                             const DecodeOptions& options, RgbImage*) {
  RowStatus status = check_other_format_header(data, size, format, options);
  if (!status.ok()) return status;
  return RowStatus::Error(RowError::kUnsupportedFormat,
                          std::string(other_format_codec(format)) +
                              ": this build has no OpenCV (CLIPSHARD_WITH_OPENCV=OFF)");
}

}  // namespace image_internal
}  // namespace clipshard
