// Parity with open_clip v3.3.0 (tests/fixtures/models/openclip, README.md there): the micro GELU
// and QuickGELU models in both file formats, open_clip's tokenizer and eval transform (incl. the
// RGBA image resized before the RGB conversion), and the ImageCLIPEvaluator operator end to end
// through the clipshard binary.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "common/test_paths.h"
#include "models/clip/model_loader.h"
#include "models/image/image_decoder.h"
#include "models/image/preprocess.h"
#include "models/text/clip_tokenizer.h"
#include "parity/clip/fixture_io.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using testing::max_abs_diff;

constexpr double kTolerance = 1e-4;  // the fixture README's suggested tolerance

fs::path oc_dir() { return testing::fixtures() / "models/openclip"; }

nlohmann::json golden() { return testing::read_json(oc_dir() / "golden.json"); }

// numpy .npy v1.0, '<i8', C order, 2-d.
std::vector<std::vector<int64_t>> read_npy_i64(const fs::path& p) {
  const std::string bytes = testing::read_file_bytes(p);
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  EXPECT_NE(header.find("'<i8'"), std::string::npos) << header;
  const auto open = header.find("'shape': (") + 10;
  const int64_t rows = std::stoll(header.substr(open));
  const int64_t cols = std::stoll(header.substr(header.find(',', open) + 1));
  EXPECT_EQ(bytes.size(), 10 + header_len + rows * cols * 8);
  std::vector<std::vector<int64_t>> out(rows, std::vector<int64_t>(cols));
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out[r].data(), bytes.data() + 10 + header_len + r * cols * 8, cols * 8);
  return out;
}

std::vector<std::string> captions() {
  std::vector<std::string> out;
  std::ifstream in(oc_dir() / "captions.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  return out;
}

LoadedModel load(const fs::path& path) {
  ModelRequest r;
  r.name_or_path = path.string();
  r.device = "cpu";
  return load_model(r);
}

void report(const std::string& what, double diff) {
  std::cout << std::left << std::setw(60) << what << " max abs diff " << std::scientific
            << std::setprecision(2) << diff << std::defaultfloat << "\n";
}

TEST(OpenClipParity, TokensEqualGolden) {
  const auto want = read_npy_i64(oc_dir() / "golden/tokens.npy");
  const auto texts = captions();
  ASSERT_EQ(texts.size(), want.size());
  const auto tok = ClipTokenizer::bundled(TokenizerFlavor::kOpenClip);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = pad_ids(tok.tokenize(texts[i], 77).ids, 77, 0);
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), want[i]) << texts[i];
  }
}

// open_clip matches <start_of_text> / <end_of_text> in the text, not OpenAI's spellings.
TEST(OpenClipParity, SpecialTokenProbes) {
  const auto open_clip = ClipTokenizer::bundled(TokenizerFlavor::kOpenClip);
  const auto openai = ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
  const auto probes = golden().at("tokenizer_vs_openai").at("special_token_probes");
  ASSERT_FALSE(probes.empty());
  for (const auto& p : probes) {
    const std::string text = p.at("text");
    const auto a = open_clip.tokenize(text, 77).ids;
    const auto b = openai.tokenize(text, 77).ids;
    EXPECT_EQ(std::vector<int64_t>(a.begin(), a.end()),
              p.at("open_clip_ids").get<std::vector<int64_t>>())
        << text;
    EXPECT_EQ(std::vector<int64_t>(b.begin(), b.end()),
              p.at("openai_ids").get<std::vector<int64_t>>())
        << text;
  }
}

// The eval transform of every image, through the loaded model's preprocessing config.
at::Tensor pixel_values(const LoadedModel& m) {
  const OpenClipPreprocess& oc = m.open_clip.value();
  const PreprocessSpec spec =
      open_clip_preprocess(static_cast<int>(oc.image_size), oc.mean, oc.std);
  std::vector<at::Tensor> out;
  const nlohmann::json g = golden();
  for (const auto& img : g.at("images")) {
    RgbImage image;
    const RowStatus st =
        decode_image_file(oc_dir() / img.at("file").get<std::string>(), DecodeOptions{}, &image);
    EXPECT_TRUE(st.ok()) << img.dump();
    const RgbImage crop = resize_and_center_crop(image, spec);
    auto t = torch::empty({3, spec.size, spec.size});
    normalize_to_chw(crop, spec, t.data_ptr<float>());
    out.push_back(t);
  }
  return torch::stack(out);
}

// The RGBA image needs the resize before the RGB conversion: converting first (alpha ignored)
// gives other pixels, so the golden match above is not a coincidence.
TEST(OpenClipParity, RgbaImageIsResizedInPremultipliedAlpha) {
  RgbImage image;
  ASSERT_TRUE(
      decode_image_file(oc_dir() / "images/d_rgba_24x20.png", DecodeOptions{}, &image).ok());
  ASSERT_EQ(image.alpha.size(), size_t{24 * 20});
  PreprocessSpec spec = open_clip_preprocess(32, PreprocessSpec{}.mean, PreprocessSpec{}.std);
  const RgbImage premultiplied = resize_and_center_crop(image, spec);
  spec.resize_before_rgb = false;
  const RgbImage converted_first = resize_and_center_crop(image, spec);
  EXPECT_NE(premultiplied.pixels, converted_first.pixels);
}

class OpenClipModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(OpenClipModelParity, FeaturesMatchGoldenInBothFormats) {
  const std::string name = GetParam();
  const auto g = golden().at("models").at(name);
  const auto want_pixels =
      testing::read_npy_f32(oc_dir() / ("golden/" + name + "_pixel_values.npy"));
  const auto want_image =
      testing::read_npy_f32(oc_dir() / ("golden/" + name + "_image_features.npy"));
  const auto want_text =
      testing::read_npy_f32(oc_dir() / ("golden/" + name + "_text_features.npy"));
  const auto want_cos = testing::read_npy_f32(oc_dir() / ("golden/" + name + "_cosine.npy"));
  const auto ids = testing::ids_tensor(read_npy_i64(oc_dir() / "golden/tokens.npy"));
  std::set<std::string> fingerprints;
  // The directory (safetensors preferred), and each file next to its config.
  for (const std::string file : {"", "open_clip_pytorch_model.bin"}) {
    SCOPED_TRACE(name + "/" + file);
    fs::path path = oc_dir() / name;
    testing::TempDir tmp;
    if (!file.empty()) {  // a directory with the .bin only
      fs::copy_file(path / "open_clip_config.json", tmp.path() / "open_clip_config.json");
      fs::copy_file(path / file, tmp.path() / file);
      path = tmp.path();
    }
    LoadedModel m = load(path);
    EXPECT_EQ(m.format, ModelFormat::kOpenClipDir);
    EXPECT_EQ(m.dims.activation, name == "quickgelu" ? Activation::kQuickGelu : Activation::kGelu);
    EXPECT_EQ(m.dims.vision_heads, 1);
    EXPECT_EQ(m.dims.text_heads, 1);
    fingerprints.insert(m.fingerprint);
    const auto pixels = pixel_values(m);
    const double dp = max_abs_diff(pixels, want_pixels);
    report(name + " pixel values (incl. RGBA)", dp);
    EXPECT_LE(dp, 2e-6);
    // Batch of 1, as the goldens were computed.
    std::vector<at::Tensor> img, txt;
    for (int64_t i = 0; i < want_pixels.size(0); ++i)
      img.push_back(m.model->encode_image(want_pixels.narrow(0, i, 1)));
    for (int64_t i = 0; i < ids.size(0); ++i)
      txt.push_back(m.model->encode_text(ids.narrow(0, i, 1)));
    const auto fi = torch::cat(img), ft = torch::cat(txt);
    const double di = max_abs_diff(fi, want_image), dt = max_abs_diff(ft, want_text);
    report(name + "/" + (file.empty() ? "safetensors" : file) + " image features", di);
    report(name + "/" + (file.empty() ? "safetensors" : file) + " text features", dt);
    EXPECT_LE(di, kTolerance);
    EXPECT_LE(dt, kTolerance);
    const auto cos = torch::mm(
        torch::nn::functional::normalize(fi, torch::nn::functional::NormalizeFuncOptions().dim(1)),
        torch::nn::functional::normalize(ft, torch::nn::functional::NormalizeFuncOptions().dim(1))
            .t());
    EXPECT_LE(max_abs_diff(cos, want_cos), kTolerance);
    EXPECT_NEAR(m.model->logit_scale(), g.at("logit_scale_exp").get<double>(), 1e-4);
    // The preprocessing on the model's own transform: also within tolerance of the golden.
    EXPECT_LE(max_abs_diff(m.model->encode_image(pixels), want_image), kTolerance);
  }
  EXPECT_EQ(fingerprints.size(), 1u) << "the .bin and .safetensors hold the same weights";
}

INSTANTIATE_TEST_SUITE_P(Models, OpenClipModelParity, ::testing::Values("gelu", "quickgelu"));

// A bare state dict with the architecture given as the config file: the same numbers.
TEST(OpenClipParity, BareStateDictWithArchitectureConfigFile) {
  ModelRequest r;
  r.name_or_path = (oc_dir() / "gelu/open_clip_model.safetensors").string();
  r.device = "cpu";
  EXPECT_THROW(load_model(r), ModelError);  // no config next to a lone file: never guessed
  r.architecture = (oc_dir() / "gelu/open_clip_config.json").string();
  LoadedModel m = load_model(r);
  EXPECT_EQ(m.format, ModelFormat::kOpenClipStateDict);
  const auto want = testing::read_npy_f32(oc_dir() / "golden/gelu_image_features.npy");
  const auto pixels = testing::read_npy_f32(oc_dir() / "golden/gelu_pixel_values.npy");
  EXPECT_LE(max_abs_diff(m.model->encode_image(pixels), want), kTolerance);
}

std::string slurp(const fs::path& p) { return testing::read_file_bytes(p); }

// ImageCLIPEvaluator through the clipshard binary: the score of (image i, caption i) is the
// golden (cos + 1) / 2 of open_clip, for both models, the RGBA image included.
TEST(OpenClipParity, ImageCLIPEvaluatorEndToEnd) {
  const auto texts = captions();
  const auto g = golden();
  for (const std::string name : {"gelu", "quickgelu"}) {
    SCOPED_TRACE(name);
    testing::TempDir tmp;
    {
      std::ofstream manifest(tmp.path() / "input.jsonl");
      int i = 0;
      for (const auto& img : g.at("images")) {
        nlohmann::json row = {
            {"id", i},
            {"image_path", (oc_dir() / img.at("file").get<std::string>()).string()},
            {"text", texts.at(i)}};
        manifest << row.dump() << "\n";
        ++i;
      }
    }
    const fs::path out = tmp.path() / "run";
    const std::string cmd = testing::clipshard_binary().string() +
                            " run --op ImageCLIPEvaluator --model '" + (oc_dir() / name).string() +
                            "' --input '" + (tmp.path() / "input.jsonl").string() +
                            "' --output-dir '" + out.string() + "' --device cpu > '" +
                            (tmp.path() / "log.txt").string() + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(tmp.path() / "log.txt");
    const auto want = g.at("models").at(name).at("pair_scores");
    std::istringstream rows(slurp(out / "output.jsonl"));
    size_t n = 0;
    double worst = 0;
    for (std::string line; std::getline(rows, line);) {
      if (line.empty()) continue;
      const auto row = nlohmann::json::parse(line);
      const int id = row.at("id").get<int>();
      const double diff = std::abs(row.at("clip_score").get<double>() - want.at(id).get<double>());
      worst = std::max(worst, diff);
      EXPECT_LE(diff, kTolerance) << line;
      ++n;
    }
    EXPECT_EQ(n, want.size());
    report(name + " ImageCLIPEvaluator scores vs golden (cos+1)/2", worst);
  }
}

}  // namespace
}  // namespace clipshard
