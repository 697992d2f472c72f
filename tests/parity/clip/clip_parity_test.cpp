// Parity with the official OpenAI CLIP / Long-CLIP code (golden features in tests/fixtures):
// (a) micro models in every on-disk format, (b) the tiny models on the exact token ids and
// preprocessed tensors of the fixtures, (c) Hugging Face vs OpenAI-layout files of the same
// weights.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <iomanip>

#include "common/test_paths.h"
#include "models/clip/model_loader.h"
#include "parity/clip/fixture_io.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using testing::fixtures;
using testing::max_abs_diff;

constexpr double kTolerance = 1e-4;  // fixtures/README.md, Tolerances: embeddings (fp32)

LoadedModel load(const fs::path& path, ModelFamily family) {
  ModelRequest r;
  r.name_or_path = path.string();
  r.family = family;
  r.device = "cpu";
  return load_model(r);
}

// A float32 dataset of preprocess/tensors_subset.h5 (official CHW tensors).
at::Tensor read_h5_tensor(const fs::path& file, const std::string& dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot open " + file.string());
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  if (d < 0) {
    H5Fclose(f);
    throw std::runtime_error("no dataset " + dataset + " in " + file.string());
  }
  const hid_t space = H5Dget_space(d);
  hsize_t dims[8];
  const int rank = H5Sget_simple_extent_dims(space, dims, nullptr);
  std::vector<int64_t> shape(dims, dims + rank);
  auto t = torch::empty(shape, torch::kFloat);
  const herr_t status =
      H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  if (status < 0) throw std::runtime_error("cannot read " + dataset);
  return t;
}

void report(const std::string& what, double diff) {
  std::cout << std::left << std::setw(64) << what << " max abs diff " << std::scientific
            << std::setprecision(2) << diff << std::defaultfloat << "\n";
}

// ---- (a) micro: every file/format of golden.json ----

void check_micro_family(const std::string& family_key, ModelFamily family) {
  const fs::path dir = fixtures() / "models/micro";
  const auto golden = testing::read_json(dir / "golden.json").at(family_key);
  const auto images =
      testing::read_npy_f32(dir / golden.at("images").at("file").get<std::string>());
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> pooled;
  for (const auto& t : golden.at("texts")) {
    rows.push_back(t.at("input_ids").get<std::vector<int64_t>>());
    pooled.push_back(t.at("pooled_position").get<int64_t>());
  }
  const auto ids = testing::ids_tensor(rows);
  const auto want_image = testing::json_features(golden.at("image_features"));
  const auto want_text = testing::json_features(golden.at("text_features"));
  const auto want_logits = testing::json_features(golden.at("logits_per_image"));

  std::set<std::string> files;
  for (const auto& [name, entry] : golden.at("formats").items())
    files.insert(entry.at("file").get<std::string>());
  ASSERT_GE(files.size(), 5u);
  // golden.json names the HF files; the directory itself is what users give.
  if (family == ModelFamily::kClip) files.insert("hf");
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    LoadedModel m = load(dir / file, family);
    const auto pos = m.model->pooled_positions(ids);
    for (size_t i = 0; i < pooled.size(); ++i) EXPECT_EQ(pos[i].item<int64_t>(), pooled[i]);
    const auto image = m.model->encode_image(images);
    const auto text = m.model->encode_text(ids);
    const auto cos = torch::matmul(torch::nn::functional::normalize(image),
                                   torch::nn::functional::normalize(text).t());
    const auto logits = cos * m.model->logit_scale();
    const double di = max_abs_diff(image, want_image), dt = max_abs_diff(text, want_text),
                 dl = max_abs_diff(logits, want_logits);
    report("micro " + family_key + " " + file + " (" + model_format_name(m.format) + ") image", di);
    report("micro " + family_key + " " + file + " text", dt);
    report("micro " + family_key + " " + file + " logits", dl);
    EXPECT_LE(di, kTolerance);
    EXPECT_LE(dt, kTolerance);
    EXPECT_LE(dl, 10 * kTolerance);  // logits are scaled by exp(logit_scale) = 14.3
  }
}

TEST(ClipParity, MicroOpenAIEveryFormat) { check_micro_family("openai", ModelFamily::kClip); }
TEST(ClipParity, MicroLongClipEveryFormat) {
  check_micro_family("longclip", ModelFamily::kLongClip);
}

// ---- (b) tiny / longclip-tiny: golden embeddings from the fixture token ids and tensors ----

struct TextSet {
  std::string key;    // embeddings/MODEL.json text key
  std::string jsonl;  // tokens/*.jsonl
};

void check_embeddings(LoadedModel& m, const std::string& model_name,
                      const std::vector<TextSet>& text_sets,
                      const std::vector<std::string>& pipelines) {
  const auto golden = testing::read_json(fixtures() / ("embeddings/" + model_name + ".json"));
  for (const auto& set : text_sets) {
    const auto tokens = testing::read_token_jsonl(fixtures() / ("tokens/" + set.jsonl));
    std::vector<std::vector<int64_t>> rows;
    std::vector<at::Tensor> want;
    for (const auto& [id, entry] : golden.at("text").items()) {
      if (!entry.contains(set.key)) continue;
      ASSERT_TRUE(tokens.count(id)) << id << " not in " << set.jsonl;
      rows.push_back(tokens.at(id));
      want.push_back(testing::json_features(entry.at(set.key)));
    }
    ASSERT_GE(rows.size(), 40u);
    const auto got = m.model->encode_text(testing::ids_tensor(rows));
    const double d = max_abs_diff(got, torch::stack(want));
    report(model_name + " text " + set.key + " (" + std::to_string(rows.size()) + " captions)", d);
    EXPECT_LE(d, kTolerance);
  }
  const fs::path h5 = fixtures() / "preprocess/tensors_subset.h5";
  int compared = 0;
  for (const auto& pipeline : pipelines) {
    for (const std::string image : {"photo_640x480.jpg", "tiny_1x1.jpg"}) {
      at::Tensor tensor;
      try {
        tensor = read_h5_tensor(h5, pipeline + "/" + image);
      } catch (const std::runtime_error&) {
        continue;  // the subset holds only some images per pipeline
      }
      const auto want = testing::json_features(golden.at("image").at(image).at(pipeline));
      const auto got = m.model->encode_image(tensor.unsqueeze(0));
      const double d = max_abs_diff(got[0], want);
      report(model_name + " image " + pipeline + "/" + image, d);
      EXPECT_LE(d, kTolerance);
      ++compared;
    }
  }
  EXPECT_GE(compared, 1);
}

TEST(ClipParity, TinyEmbeddings) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // missing datasets are expected
  LoadedModel m = load(fixtures() / "models/tiny/hf", ModelFamily::kClip);
  check_embeddings(m, "tiny", {{"openai77", "openai_77.jsonl"}, {"hf77", "hf_77.jsonl"}},
                   {"openai224", "hf224"});
}

TEST(ClipParity, LongClipTinyEmbeddings) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  LoadedModel m = load(fixtures() / "models/longclip-tiny/model.pt", ModelFamily::kLongClip);
  check_embeddings(m, "longclip-tiny",
                   {{"longclip248", "longclip_248.jsonl"},
                    {"longclip248_operator", "longclip_248_operator.jsonl"}},
                   {"longclip336"});
}

// ---- (c) Hugging Face safetensors vs OpenAI-layout files of the same weights ----

TEST(ClipParity, HuggingFaceAndOpenAILayoutsGiveTheSameEmbeddings) {
  testing::TempDir tmp;
  // The tiny HF weights re-written as an OpenAI state dict .pt (fp16, as stored).
  const fs::path hf_dir = fixtures() / "models/tiny/hf";
  const StateDict hf = read_safetensors(hf_dir / "model.safetensors");
  StateDict openai = to_openai_layout(hf, WeightsLayout::kHuggingFace);
  for (auto& [name, t] : openai) t = t.to(hf.begin()->second.scalar_type());
  const fs::path pt = tmp.path() / "tiny_openai.pt";
  write_torch_zip(pt, openai, "tiny_openai");
  LoadedModel a = load(hf_dir, ModelFamily::kClip);
  LoadedModel b = load(pt, ModelFamily::kClip);
  EXPECT_EQ(a.fingerprint, b.fingerprint);

  const auto tokens = testing::read_token_jsonl(fixtures() / "tokens/hf_77.jsonl");
  std::vector<std::vector<int64_t>> rows;
  for (const auto& [id, ids] : tokens) rows.push_back(ids);
  const auto ids = testing::ids_tensor(rows);
  torch::manual_seed(5);
  const auto images = torch::randn({2, 3, 224, 224});
  const double dt = max_abs_diff(a.model->encode_text(ids), b.model->encode_text(ids));
  const double di = max_abs_diff(a.model->encode_image(images), b.model->encode_image(images));
  report("tiny hf/model.safetensors vs OpenAI .pt text", dt);
  report("tiny hf/model.safetensors vs OpenAI .pt image", di);
  EXPECT_LE(dt, kTolerance);
  EXPECT_LE(di, kTolerance);

  // The micro fixtures: the HF directory and the official state dict.
  const fs::path micro = fixtures() / "models/micro";
  LoadedModel c = load(micro / "hf", ModelFamily::kClip);
  LoadedModel d = load(micro / "openai_state_dict.pt", ModelFamily::kClip);
  const auto micro_images = testing::read_npy_f32(micro / "inputs_openai64.npy");
  const double dm =
      max_abs_diff(c.model->encode_image(micro_images), d.model->encode_image(micro_images));
  report("micro hf/model.safetensors vs openai_state_dict.pt image", dm);
  EXPECT_LE(dm, kTolerance);
}

}  // namespace
}  // namespace clipshard
