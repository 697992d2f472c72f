// Decoding + resize + center crop + normalisation against the golden fixtures made by Pillow 9.4,
// torchvision and transformers' CLIPImageProcessor (tests/fixtures/README.md, "Image
// preprocessing"). Everything must match exactly: crops pixel for pixel, sizes and offsets, and
// the normalisation LUT bit for bit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "models/image/image_decoder.h"
#include "models/image/pil_resize.h"
#include "models/image/preprocess.h"

namespace clipshard {
namespace {

using nlohmann::json;
using testing::fixtures;

json load_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in) << "cannot open " << file;
  return json::parse(in);
}

struct Pipeline {
  const char* name;
  PreprocessSpec spec;
};

const std::vector<Pipeline>& pipelines() {
  static const std::vector<Pipeline> all = {{"openai224", openai_preprocess(224)},
                                            {"longclip336", longclip_preprocess(336)},
                                            {"hf224", hf_clip_preprocess(224)}};
  return all;
}

// Pixels (not bytes) where a and b differ; a size mismatch counts every pixel.
size_t differing_pixels(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height) {
    return static_cast<size_t>(std::max(a.width * a.height, b.width * b.height));
  }
  size_t count = 0;
  for (size_t i = 0; i + 2 < a.pixels.size(); i += 3) {
    if (std::memcmp(&a.pixels[i], &b.pixels[i], 3) != 0) ++count;
  }
  return count;
}

TEST(PreprocessParity, CropsSizesAndOffsetsMatchEveryPipeline) {
  const json summary = load_json(fixtures() / "preprocess" / "summary.json");
  int images = 0, crops_compared = 0, crops_exact = 0;
  for (const auto& [name, entry] : summary.items()) {
    if (!entry.value("readable", false)) continue;
    SCOPED_TRACE(name);
    ++images;
    RgbImage decoded;
    const RowStatus status = decode_image_file(fixtures() / "images" / name, {}, &decoded);
    if (!image_decoder_has_opencv() && status.code == RowError::kUnsupportedFormat) {
      continue;  // a BMP in a build without OpenCV (docs/GPU.md); the other images still count
    }
    ASSERT_TRUE(status.ok()) << status.message;
    EXPECT_EQ(decoded.width, entry["size_wh"][0].get<int>());
    EXPECT_EQ(decoded.height, entry["size_wh"][1].get<int>());
    for (const Pipeline& pipeline : pipelines()) {
      SCOPED_TRACE(pipeline.name);
      const json& expected = entry.at(pipeline.name);
      const CropPlan plan = plan_resize_and_crop(decoded.width, decoded.height, pipeline.spec);
      EXPECT_EQ(plan.resized_height, expected["resized_hw"][0].get<int64_t>());
      EXPECT_EQ(plan.resized_width, expected["resized_hw"][1].get<int64_t>());
      EXPECT_EQ(plan.top, expected["crop_top_left"][0].get<int>());
      EXPECT_EQ(plan.left, expected["crop_top_left"][1].get<int>());

      const RgbImage crop = resize_and_center_crop(decoded, pipeline.spec);
      RgbImage golden;
      const auto golden_path = fixtures() / "preprocess" / expected["crop_png"].get<std::string>();
      ASSERT_TRUE(decode_image_file(golden_path, {}, &golden).ok()) << golden_path;
      ++crops_compared;
      const size_t diff = differing_pixels(crop, golden);
      EXPECT_EQ(diff, 0u) << "pixels differing from " << golden_path;
      if (diff == 0) ++crops_exact;

      // The windowed resize equals cropping PIL's full resize.
      const RgbImage full = pil_resize_bicubic(decoded, static_cast<int>(plan.resized_width),
                                               static_cast<int>(plan.resized_height));
      RgbImage cropped_full;
      cropped_full.width = cropped_full.height = pipeline.spec.size;
      const size_t row = size_t{3} * pipeline.spec.size;
      for (int y = 0; y < pipeline.spec.size; ++y) {
        const uint8_t* src =
            full.pixels.data() + ((plan.top + y) * size_t(full.width) + plan.left) * 3;
        cropped_full.pixels.insert(cropped_full.pixels.end(), src, src + row);
      }
      EXPECT_EQ(differing_pixels(cropped_full, golden), 0u) << "full resize then crop";
    }
  }
  std::printf("[ parity ] %d images, %d crops compared, %d exact\n", images, crops_compared,
              crops_exact);
  EXPECT_EQ(images, 24);
  EXPECT_EQ(crops_exact, crops_compared);
}

TEST(PreprocessParity, UnreadableFixturesGiveTheirRowErrors) {
  const std::filesystem::path dir = fixtures() / "images";
  const std::vector<std::pair<const char*, RowError>> cases = {
      {"empty.jpg", RowError::kEmptyFile},
      {"truncated.jpg", RowError::kTruncatedImage},
      {"not_an_image.jpg", RowError::kNotAnImage},
      {"directory.jpg", RowError::kIsDirectory},
      {"missing.jpg", RowError::kFileNotFound},
  };
  const json summary = load_json(fixtures() / "preprocess" / "summary.json");
  for (const auto& [file, code] : cases) {
    SCOPED_TRACE(file);
    EXPECT_FALSE(summary.at(file).value("readable", true));
    RgbImage image;
    const RowStatus status = decode_image_file(dir / file, {}, &image);
    EXPECT_EQ(status.code, code) << status.message;
    EXPECT_EQ(image.width, 0);
    EXPECT_TRUE(image.pixels.empty());
  }
}

TEST(PreprocessParity, NormalizationLutIsBitExact) {
  const json reference = load_json(fixtures() / "preprocess" / "normalize_lut.json");
  const PreprocessSpec spec;  // OpenAI mean/std, shared by all three pipelines
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(spec.mean[c], reference["mean"][c].get<float>());
    EXPECT_EQ(spec.std[c], reference["std"][c].get<float>());
  }
  const NormalizeLut lut = make_normalize_lut(spec);
  int mismatches = 0;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float expected = static_cast<float>(reference["lut"][c][v].get<double>());
      if (std::memcmp(&lut[c][v], &expected, sizeof(float)) != 0) {
        ++mismatches;
        ADD_FAILURE() << "lut[" << c << "][" << v << "] = " << lut[c][v] << ", want " << expected;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);

  // normalize_to_chw is the LUT applied per channel plane, on a real crop.
  RgbImage decoded;
  ASSERT_TRUE(decode_image_file(fixtures() / "images" / "photo_640x480.jpg", {}, &decoded).ok());
  const RgbImage crop = resize_and_center_crop(decoded, spec);
  std::vector<float> chw(3 * 224 * 224);
  normalize_to_chw(crop, spec, chw.data());
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 224 * 224; ++i) {
      const float expected =
          static_cast<float>(reference["lut"][c][crop.pixels[3 * i + c]].get<double>());
      ASSERT_EQ(std::memcmp(&chw[c * 224 * 224 + i], &expected, sizeof(float)), 0)
          << "channel " << c << " pixel " << i;
    }
  }
}

}  // namespace
}  // namespace clipshard
