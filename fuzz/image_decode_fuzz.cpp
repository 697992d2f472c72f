// libFuzzer entry point: arbitrary bytes through decode_image_bytes and, when they decode, the
// CLIP preprocessing (resize + center crop + normalisation). Every input must end in a RowStatus
// without a crash, a leak, an exit() from a codec library or a sanitizer report. A small pixel
// limit keeps each run cheap and exercises the decompression-bomb guard.
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/image_decode_fuzz.cpp \
//     $(ls models/image/*.cpp | grep -v _none.cpp) $(pkg-config --cflags --libs opencv4 libwebpdemux libwebp) -ljpeg -lpng \
//     -lgif -o image_decode_fuzz
//   ./image_decode_fuzz -max_len=65536 tests/fixtures/images
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "models/image/image_decoder.h"
#include "models/image/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace clipshard;
  DecodeOptions options;
  options.max_pixels = 1 << 20;
  // The last byte picks the decode mode, so that both the exact and the reduced JPEG paths run.
  options.reduced_decode = size > 0 && (data[size - 1] & 1);
  options.target_short_side = 16;

  RgbImage image;
  const RowStatus status = decode_image_bytes(data, size, options, &image);
  if (!status.ok()) {
    if (!image.pixels.empty() || image.width != 0 || image.height != 0) std::abort();
    return 0;
  }
  if (image.width < 1 || image.height < 1 ||
      int64_t{image.width} * image.height > options.max_pixels ||
      image.pixels.size() != size_t{3} * image.width * image.height) {
    std::abort();
  }
  const PreprocessSpec spec = hf_clip_preprocess(32);
  const RgbImage crop = resize_and_center_crop(image, spec);
  if (crop.width != spec.size || crop.height != spec.size) std::abort();
  std::vector<float> tensor(size_t{3} * spec.size * spec.size);
  normalize_to_chw(crop, spec, tensor.data());
  return 0;
}
