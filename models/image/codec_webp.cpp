// WebP through libwebp's animation decoder, as Pillow 9.4 (_webp.c, HAVE_WEBPANIM) reads every
// WebP file: WebPAnimDecoder with default options (RGBA, no premultiplication), first frame on
// the canvas (transparent black outside the frame), alpha dropped by convert("RGB").
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>
#include <string>

#include "models/image/codecs.h"

namespace clipshard::image_internal {
namespace {

class AnimDecoder {
 public:
  explicit AnimDecoder(WebPAnimDecoder* decoder) : decoder_(decoder) {}
  ~AnimDecoder() {
    if (decoder_) WebPAnimDecoderDelete(decoder_);
  }
  AnimDecoder(const AnimDecoder&) = delete;
  AnimDecoder& operator=(const AnimDecoder&) = delete;
  WebPAnimDecoder* get() const { return decoder_; }

 private:
  WebPAnimDecoder* decoder_;
};

// The RIFF header states the file size: fewer bytes than that is a truncated file.
bool riff_truncated(const uint8_t* data, size_t size) {
  if (size < 12) return true;
  const uint64_t riff_size = uint64_t{data[4]} | (uint64_t{data[5]} << 8) |
                             (uint64_t{data[6]} << 16) | (uint64_t{data[7]} << 24);
  return riff_size + 8 > size;
}

RowStatus failure(const uint8_t* data, size_t size, const char* what) {
  if (riff_truncated(data, size)) {
    return RowStatus::Error(RowError::kTruncatedImage, "libwebp: image file is truncated");
  }
  return RowStatus::Error(RowError::kCorruptImage, std::string("libwebp: ") + what);
}

}  // namespace

RowStatus decode_webp(const uint8_t* data, size_t size, const DecodeOptions& options,
                      RgbImage* out) {
  WebPBitstreamFeatures features;
  const VP8StatusCode code = WebPGetFeatures(data, size, &features);
  if (code == VP8_STATUS_NOT_ENOUGH_DATA) {
    return RowStatus::Error(RowError::kTruncatedImage, "libwebp: image file is truncated");
  }
  if (code == VP8_STATUS_UNSUPPORTED_FEATURE) {
    return RowStatus::Error(RowError::kUnsupportedFormat, "libwebp: unsupported feature");
  }
  if (code != VP8_STATUS_OK) return failure(data, size, "invalid bitstream");
  // For animations these are the canvas size, which is what the decoder allocates.
  RowStatus status = check_dimensions(features.width, features.height, options, "webp");
  if (!status.ok()) return status;

  WebPData input;
  input.bytes = data;
  input.size = size;
  WebPAnimDecoderOptions decoder_options;
  if (!WebPAnimDecoderOptionsInit(&decoder_options)) {
    return RowStatus::Error(RowError::kInternal, "libwebp: version mismatch");
  }
  decoder_options.color_mode = MODE_RGBA;
  decoder_options.use_threads = 0;
  AnimDecoder decoder(WebPAnimDecoderNew(&input, &decoder_options));
  if (!decoder.get()) return failure(data, size, "could not create decoder");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(decoder.get(), &info)) return failure(data, size, "no info");
  status = check_dimensions(info.canvas_width, info.canvas_height, options, "webp");
  if (!status.ok()) return status;
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(decoder.get(), &rgba, &timestamp) || !rgba) {
    return failure(data, size, "could not decode the first frame");
  }

  const int w = static_cast<int>(info.canvas_width);
  const int h = static_cast<int>(info.canvas_height);
  allocate_rgb(w, h, out);
  const size_t count = static_cast<size_t>(w) * static_cast<size_t>(h);
  uint8_t* dst = out->pixels.data();
  for (size_t i = 0; i < count; ++i, rgba += 4, dst += 3) {
    dst[0] = rgba[0];
    dst[1] = rgba[1];
    dst[2] = rgba[2];
  }
  return RowStatus::Ok();
}

}  // namespace clipshard::image_internal
