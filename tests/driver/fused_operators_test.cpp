// Operators that share a model or an image share the work: a pipeline of ImageCLIPEvaluator +
// ImageClipFilter (the same model) + ImageLongCLIPEvaluator decodes each image once, preprocesses
// it once per distinct preprocessing (the CLIP operators' one, LongCLIP's own) and computes each
// embedding once per model, as the typed shard statistics (summary.json) count it. The embedding
// cache is off, so nothing is reused from an earlier run.
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/fixture_manifest.h"
#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

const fs::path kClip = testing::fixtures() / "models/tiny/hf";
const fs::path kLongClip = testing::fixtures() / "models/longclip-tiny/model.pt";

struct Dataset {
  fs::path manifest;
  int64_t readable_images = 0;  // distinct image files that exist
  int64_t captions = 0;         // distinct non-blank captions of rows whose image exists
};

// 30 rows over 5 images that decode and a missing one, 6 captions and a blank one: every image and
// caption is shared by several rows.
Dataset write_dataset(const fs::path& dir) {
  const std::vector<std::string> files = {"photo_640x480.jpg",     "portrait_333x500.jpg",
                                          "panorama_1024x200.jpg", "palette_256x192.png",
                                          "cmyk_300x400.jpg",      "missing.jpg"};
  const std::vector<std::string> captions = {"a cat",     "a dog in the snow",  "mountains at dawn",
                                             "a red car", "two people talking", "a bowl of fruit",
                                             "   "};
  const int rows = 30;
  Dataset d;
  d.manifest = testing::write_fixture_manifest(dir, rows, files, captions);
  std::set<std::string> readable, texts;
  for (int i = 0; i < rows; ++i) {
    const fs::path image = testing::fixtures() / "images" / files[i % files.size()];
    const std::string& caption = captions[i % captions.size()];
    if (!fs::exists(image)) continue;
    readable.insert(image.string());
    if (caption.find_first_not_of(' ') != std::string::npos) texts.insert(caption);
  }
  d.readable_images = static_cast<int64_t>(readable.size());
  d.captions = static_cast<int64_t>(texts.size());
  return d;
}

nlohmann::json op(const char* kind, const fs::path& model) {
  nlohmann::json o = {{"operator", kind}, {"model_name", model.string()}};
  if (std::string(kind) == "ImageClipFilter") {
    o["threshold"] = 0.1;
  } else {
    o["input_image_key"] = "image";
    o["input_text_key"] = "caption";
  }
  return o;
}

// Runs `pipeline` over the dataset in one shard and returns summary.json.
nlohmann::json run(const Dataset& data, const fs::path& out, const nlohmann::json& pipeline) {
  const nlohmann::json config = {{"input", data.manifest.string()},
                                 {"output_dir", out.string()},
                                 {"device", "cpu"},
                                 {"batch_size", 4},
                                 {"lines_per_shard", 1000},
                                 {"progress_interval_s", 0},
                                 {"embedding_cache", {{"enabled", false}}},
                                 {"pipeline", pipeline}};
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(parse_run_config(config), options), kExitOk) << log.str();
  return nlohmann::json::parse(read_file(out / "summary.json"));
}

TEST(FusedOperators, DecodeOncePreprocessOncePerPipelineEmbedOncePerModel) {
  testing::TempDir tmp;
  const Dataset data = write_dataset(tmp.path());
  ASSERT_EQ(data.readable_images, 5);
  ASSERT_EQ(data.captions, 6);

  const auto fused =
      run(data, tmp.path() / "fused",
          nlohmann::json::array({op("ImageCLIPEvaluator", kClip), op("ImageClipFilter", kClip),
                                 op("ImageLongCLIPEvaluator", kLongClip)}));
  const auto& images = fused["ranks"]["1"]["images"];
  EXPECT_EQ(images["distinct"], 6);
  // One decode per readable image for the three operators; the missing one is never decoded.
  EXPECT_EQ(images["decoded"], data.readable_images);
  // Two preprocessings (CLIP's 224 px, LongCLIP's 336 px), each once per image.
  EXPECT_EQ(images["preprocessed"], 2 * data.readable_images);
  // Two models: the evaluator and the filter share CLIP's embeddings.
  const auto& e = fused["embeddings"];
  EXPECT_EQ(e["image_computed"], 2 * data.readable_images);
  EXPECT_EQ(e["text_computed"], 2 * data.captions);
  EXPECT_EQ(e["image_reused"], 0);
  EXPECT_EQ(e["text_reused"], 0);

  // The same counts as the two models' operators run alone: fusing adds no work.
  const auto clip_alone =
      run(data, tmp.path() / "clip", nlohmann::json::array({op("ImageCLIPEvaluator", kClip)}));
  const auto long_alone = run(data, tmp.path() / "long",
                              nlohmann::json::array({op("ImageLongCLIPEvaluator", kLongClip)}));
  for (const char* key : {"image_computed", "text_computed"})
    EXPECT_EQ(e[key].get<int64_t>(), clip_alone["embeddings"][key].get<int64_t>() +
                                         long_alone["embeddings"][key].get<int64_t>())
        << key;
  EXPECT_EQ(clip_alone["ranks"]["1"]["images"]["decoded"], data.readable_images);
  EXPECT_EQ(clip_alone["ranks"]["1"]["images"]["preprocessed"], data.readable_images);
}

}  // namespace
}  // namespace clipshard
