// reduced_decode against exact decoding on fixture JPEGs that it scales by 1/2, 1/4 and 1/8 at the
// 224 px input of the tiny fixture model: the crops stay close (mean |pixel difference| <= 2 of
// 255) and the CLIP score (cosine of the image embedding with a text embedding) moves by at most
// kScoreTolerance. The bound is twice the largest difference measured with this model on 66
// generated photos of 300-4000 px (a cosine difference of 5e-3 end to end, docs/PERFORMANCE.md,
// "Reduced decode"; these fixtures move by 6e-4 at most); exact mode itself is held to 1e-4 by the
// parity tests, which is why reduced decode is never the default.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "models/clip/model_loader.h"
#include "models/image/image_decoder.h"
#include "models/image/preprocess.h"
#include "models/weights/process_tuning.h"

namespace clipshard {
namespace {

using testing::fixtures;

constexpr double kScoreTolerance = 1e-2;
constexpr double kMeanPixelTolerance = 2.0;

struct Case {
  std::string file;
  int denominator;  // the scale the 224 px model must get
};

TEST(ReducedDecode, CloseToExactOnFixturePhotos) {
  ProcessTuning tuning;
  tuning.torch_threads = 1;
  tune_process(tuning);
  ModelRequest request;
  request.name_or_path = (fixtures() / "models" / "tiny" / "hf").string();
  LoadedModel loaded = load_model(request);
  const int size = loaded.dims.image_resolution;
  ASSERT_EQ(size, 224);
  const PreprocessSpec spec = hf_clip_preprocess(size);

  const std::vector<Case> cases = {
      {(fixtures() / "images" / "photo_640x480.jpg").string(), 2},
      {(fixtures() / "reduced_decode" / "photo_1600x1200.jpg").string(), 4},
      {(fixtures() / "images" / "large_3000x2000.jpg").string(), 8},
      {(fixtures() / "images" / "portrait_333x500.jpg").string(), 1},  // too small: unchanged
  };
  DecodeOptions exact_options, reduced_options;
  reduced_options.reduced_decode = true;
  reduced_options.target_short_side = size;

  const int n = static_cast<int>(cases.size());
  auto exact_batch = torch::empty({n, 3, size, size});
  auto reduced_batch = torch::empty({n, 3, size, size});
  for (int i = 0; i < n; ++i) {
    SCOPED_TRACE(cases[i].file);
    RgbImage exact, reduced;
    ASSERT_TRUE(decode_image_file(cases[i].file, exact_options, &exact).ok());
    ASSERT_TRUE(decode_image_file(cases[i].file, reduced_options, &reduced).ok());
    const int d = cases[i].denominator;
    ASSERT_EQ(jpeg_reduced_scale_denominator(exact.width, exact.height, reduced_options), d);
    EXPECT_EQ(reduced.width, (exact.width + d - 1) / d);
    const RgbImage exact_crop = resize_and_center_crop(exact, spec);
    const RgbImage reduced_crop = resize_and_center_crop(reduced, spec);
    ASSERT_EQ(exact_crop.pixels.size(), reduced_crop.pixels.size());
    double sum = 0;
    for (size_t k = 0; k < exact_crop.pixels.size(); ++k)
      sum += std::abs(static_cast<int>(exact_crop.pixels[k]) - reduced_crop.pixels[k]);
    const double mean = sum / static_cast<double>(exact_crop.pixels.size());
    std::cout << cases[i].file << ": 1/" << d << ", mean |pixel difference| " << mean << "\n";
    if (d == 1) {
      EXPECT_EQ(exact_crop.pixels, reduced_crop.pixels);
    } else {
      EXPECT_GT(mean, 0.0);  // the pixels do change: this is not parity mode
      EXPECT_LE(mean, kMeanPixelTolerance);
    }
    normalize_to_chw(exact_crop, spec, exact_batch[i].data_ptr<float>());
    normalize_to_chw(reduced_crop, spec, reduced_batch[i].data_ptr<float>());
  }

  torch::NoGradGuard no_grad;
  // One caption per image: random token ids between the start and end tokens.
  torch::manual_seed(5);
  auto ids = torch::randint(1, 49000, {n, 12}, torch::kLong);
  ids.select(1, 0).fill_(49406);
  ids.select(1, 11).fill_(49407);
  auto text = loaded.model->encode_text(ids);
  text = text / text.norm(2, -1, true);
  auto exact_img = loaded.model->encode_image(exact_batch);
  auto reduced_img = loaded.model->encode_image(reduced_batch);
  exact_img = exact_img / exact_img.norm(2, -1, true);
  reduced_img = reduced_img / reduced_img.norm(2, -1, true);
  const auto exact_scores = (exact_img * text).sum(-1);
  const auto reduced_scores = (reduced_img * text).sum(-1);
  for (int i = 0; i < n; ++i) {
    SCOPED_TRACE(cases[i].file);
    const double diff = std::abs(exact_scores[i].item<double>() - reduced_scores[i].item<double>());
    std::cout << cases[i].file << ": |score difference| " << diff << "\n";
    EXPECT_LE(diff, kScoreTolerance);
    if (cases[i].denominator == 1) {
      EXPECT_EQ(diff, 0.0);
    }
  }
}

}  // namespace
}  // namespace clipshard
