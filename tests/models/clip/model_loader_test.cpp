// The model factory: every accepted name spelling, the places listed when a name is not found,
// family checks, corrupt files, LongCLIP directory search, random models through every format.
#include "models/clip/model_loader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "common/test_paths.h"
#include "models/clip/random_model.h"
#include "parity/clip/fixture_io.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using testing::fixtures;
using testing::TempDir;

// Sets an environment variable for the scope of a test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value.empty())
      ::unsetenv(name);
    else
      ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Hides the user's real caches so that the tests see only the trees they build.
struct IsolatedHfEnv {
  explicit IsolatedHfEnv(const fs::path& home)
      : hub("HF_HUB_CACHE", ""),
        hf_home("HF_HOME", ""),
        xdg("XDG_CACHE_HOME", ""),
        home_env("HOME", home.string()) {}
  ScopedEnv hub, hf_home, xdg, home_env;
};

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

const fs::path kMicro = fixtures() / "models/micro";

ModelRequest request(const std::string& name, ModelFamily family = ModelFamily::kAny) {
  ModelRequest r;
  r.name_or_path = name;
  r.family = family;
  r.device = "cpu";
  return r;
}

TEST(ResolveModelPath, EveryAcceptedSpelling) {
  TempDir tmp;
  const fs::path models = tmp.path() / "models";
  const fs::path home = tmp.path() / "home";
  IsolatedHfEnv isolated(home);
  fs::create_directories(models / "openai/clip-vit-base-patch32");
  fs::create_directories(models / "BeichenZhang--LongCLIP-L-336px");
  touch(models / "local.pt");
  // HF caches: refs/main picks its snapshot; without refs the newest snapshot.
  const fs::path hub_cache = tmp.path() / "hub_cache";
  fs::create_directories(hub_cache / "models--org--in-hub-cache/snapshots/aaa");
  fs::create_directories(hub_cache / "models--org--in-hub-cache/snapshots/bbb");
  fs::create_directories(hub_cache / "models--org--in-hub-cache/refs");
  std::ofstream(hub_cache / "models--org--in-hub-cache/refs/main") << "aaa\n";
  const fs::path hf_home = tmp.path() / "hf_home";
  fs::create_directories(hf_home / "hub/models--org--in-hf-home/snapshots/rev1");
  fs::create_directories(home / ".cache/huggingface/hub/models--org--in-home/snapshots/rev2");
  const fs::path xdg = tmp.path() / "xdg";
  fs::create_directories(xdg / "huggingface/hub/models--org--in-xdg/snapshots/rev3");
  fs::create_directories(models / "models--org--in-models-dir/snapshots/rev4");
  fs::create_directories(home / ".cache/huggingface/hub/models--single/snapshots/rev5");
  ScopedEnv e1("HF_HUB_CACHE", hub_cache.string());
  ScopedEnv e2("HF_HOME", hf_home.string());
  ScopedEnv e3("XDG_CACHE_HOME", xdg.string());

  EXPECT_EQ(resolve_model_path((models / "local.pt").string(), ""), models / "local.pt");
  EXPECT_EQ(resolve_model_path("~/.cache/huggingface/hub", ""), home / ".cache/huggingface/hub");
  EXPECT_EQ(resolve_model_path("openai/clip-vit-base-patch32", models),
            models / "openai/clip-vit-base-patch32");
  EXPECT_EQ(resolve_model_path("local.pt", models), models / "local.pt");
  EXPECT_EQ(resolve_model_path("BeichenZhang/LongCLIP-L-336px", models),
            models / "BeichenZhang--LongCLIP-L-336px");
  EXPECT_EQ(resolve_model_path("org/in-hub-cache", models),
            hub_cache / "models--org--in-hub-cache/snapshots/aaa");
  EXPECT_EQ(resolve_model_path("org/in-hf-home", ""),
            hf_home / "hub/models--org--in-hf-home/snapshots/rev1");
  EXPECT_EQ(resolve_model_path("org/in-home", ""),
            home / ".cache/huggingface/hub/models--org--in-home/snapshots/rev2");
  EXPECT_EQ(resolve_model_path("org/in-xdg", ""),
            xdg / "huggingface/hub/models--org--in-xdg/snapshots/rev3");
  EXPECT_EQ(resolve_model_path("org/in-models-dir", models),
            models / "models--org--in-models-dir/snapshots/rev4");
  EXPECT_EQ(resolve_model_path("single", ""),
            home / ".cache/huggingface/hub/models--single/snapshots/rev5");
}

TEST(ResolveModelPath, UnresolvableNameListsEveryPlace) {
  TempDir tmp;
  IsolatedHfEnv isolated(tmp.path() / "home");
  ScopedEnv hub("HF_HUB_CACHE", (tmp.path() / "hubcache").string());
  const fs::path models = tmp.path() / "models";
  try {
    resolve_model_path("org/nothing-here", models);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n";
    for (const std::string& place :
         {std::string("org/nothing-here"), (models / "org/nothing-here").string(),
          (models / "org--nothing-here").string(),
          (tmp.path() / "hubcache/models--org--nothing-here/snapshots").string(),
          std::string("$HF_HOME/hub (not set)"), std::string("$XDG_CACHE_HOME"),
          (tmp.path() / "home/.cache/huggingface/hub/models--org--nothing-here").string(),
          (models / "models--org--nothing-here/snapshots").string()})
      EXPECT_NE(msg.find(place), std::string::npos) << place << " not in: " << msg;
  }
  EXPECT_THROW(load_model(request((tmp.path() / "missing.pt").string())), ModelError);
}

TEST(FindCheckpointInDir, PrefersLongClipNamesThenSortedOrder) {
  EXPECT_EQ(find_checkpoint_in_dir(kMicro / "longclip_dir"),
            kMicro / "longclip_dir/longclip_micro.pt");
  EXPECT_EQ(find_checkpoint_in_dir(kMicro / "longclip_variants"),
            kMicro / "longclip_variants/longclip_micro.bin");
  TempDir tmp;
  touch(tmp.path() / "b.ckpt");
  touch(tmp.path() / "a.bin");
  touch(tmp.path() / "README.txt");
  EXPECT_EQ(find_checkpoint_in_dir(tmp.path()), tmp.path() / "a.bin");
  touch(tmp.path() / "zz_LongCLIP-L.pt");
  EXPECT_EQ(find_checkpoint_in_dir(tmp.path()), tmp.path() / "zz_LongCLIP-L.pt");
  TempDir empty;
  touch(empty.path() / "README.txt");
  EXPECT_FALSE(find_checkpoint_in_dir(empty.path()));
  EXPECT_THROW(load_model(request(empty.path().string())), ModelError);
}

TEST(LoadModel, RecognisesEveryMicroFormat) {
  struct Case {
    std::string path;
    ModelFormat format;
    ModelFamily family;
  };
  const std::vector<Case> cases = {
      {"openai_state_dict.pt", ModelFormat::kOpenAIStateDict, ModelFamily::kClip},
      {"openai_state_dict_fp32.pt", ModelFormat::kOpenAIStateDict, ModelFamily::kClip},
      {"openai_jit.pt", ModelFormat::kOpenAITorchScript, ModelFamily::kClip},
      {"hf", ModelFormat::kHuggingFaceDir, ModelFamily::kClip},
      {"hf/pytorch_model.bin", ModelFormat::kHuggingFaceFile, ModelFamily::kClip},
      {"longclip_micro.pt", ModelFormat::kLongClipCheckpoint, ModelFamily::kLongClip},
      {"longclip_dir", ModelFormat::kLongClipCheckpoint, ModelFamily::kLongClip},
      {"longclip_variants", ModelFormat::kLongClipCheckpoint, ModelFamily::kLongClip},
      {"longclip_variants/longclip_micro.ckpt", ModelFormat::kLongClipCheckpoint,
       ModelFamily::kLongClip},
  };
  std::string clip_id, longclip_id;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    StateDict sd;
    const LoadedModel m = read_model_weights(request((kMicro / c.path).string(), c.family), sd);
    EXPECT_EQ(m.format, c.format) << model_format_name(m.format);
    EXPECT_EQ(m.family, c.family);
    EXPECT_EQ(m.fingerprint.size(), 32u);
    EXPECT_FALSE(m.vocab_json);  // the micro HF directory has no vocabulary
    // Every file holds the same numbers: one fingerprint per family.
    std::string& id = c.family == ModelFamily::kClip ? clip_id : longclip_id;
    if (id.empty()) id = m.fingerprint;
    EXPECT_EQ(m.fingerprint, id);
  }
  EXPECT_NE(clip_id, longclip_id);
}

TEST(LoadModel, RecordsTokenizerFilesOfHuggingFaceDirectory) {
  StateDict sd;
  const LoadedModel m = read_model_weights(request((fixtures() / "models/tiny/hf").string()), sd);
  EXPECT_EQ(m.format, ModelFormat::kHuggingFaceDir);
  ASSERT_TRUE(m.vocab_json && m.merges_txt);
  EXPECT_EQ(*m.vocab_json, fixtures() / "models/tiny/hf/vocab.json");
  EXPECT_EQ(m.weights_file, fixtures() / "models/tiny/hf/model.safetensors");
}

TEST(LoadModel, WrongFamilyIsAClearError) {
  try {
    load_model(request((kMicro / "openai_state_dict.pt").string(), ModelFamily::kLongClip));
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("LongCLIP"), std::string::npos) << msg;
    EXPECT_NE(msg.find("positional_embedding_res"), std::string::npos) << msg;
  }
  EXPECT_THROW(load_model(request((kMicro / "longclip_micro.pt").string(), ModelFamily::kClip)),
               ModelError);
  // The decoy has no CLIP tensors at all.
  try {
    load_model(request((kMicro / "longclip_variants/a_decoy.pt").string(), ModelFamily::kLongClip));
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("a_decoy.pt"), std::string::npos) << e.what();
  }
}

TEST(LoadModel, CorruptFileCarriesTheCheckpointError) {
  TempDir tmp;
  const std::string bytes = testing::read_file_bytes(kMicro / "longclip_micro.pt");
  const fs::path cut = tmp.path() / "longclip_cut.pt";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    load_model(request(cut.string()));
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n";
    EXPECT_NE(msg.find("longclip_cut.pt"), std::string::npos) << msg;
  }
  const fs::path junk = tmp.path() / "junk.bin";
  std::ofstream(junk, std::ios::binary) << "this is not a checkpoint";
  EXPECT_THROW(load_model(request(junk.string())), ModelError);
}

// Features of a fixed batch of images and token rows.
std::pair<at::Tensor, at::Tensor> features(LoadedModel& m) {
  torch::manual_seed(17);
  const int64_t r = m.dims.image_resolution;
  const auto images = torch::randn({2, 3, r, r});
  auto ids = torch::zeros({2, m.dims.context_length}, torch::kLong);
  ids[0].narrow(0, 0, 5) = torch::tensor({49406, 320, 1125, 539, 49407});
  ids[1].narrow(0, 0, 3) = torch::tensor({49406, 7, 49407});
  return {m.model->encode_image(images), m.model->encode_text(ids)};
}

TEST(RandomModel, RoundTripThroughEveryFormatGivesIdenticalEmbeddings) {
  TempDir tmp;
  const fs::path hf = tmp.path() / "tiny-hf", pt = tmp.path() / "tiny.pt",
                 pt16 = tmp.path() / "tiny16.pt", lc = tmp.path() / "lc/longclip-tiny.pt";
  write_random_model("tiny", RandomModelFormat::kHuggingFaceDir, 42, hf);
  write_random_model("tiny", RandomModelFormat::kOpenAIStateDict, 42, pt);
  write_random_model("tiny", RandomModelFormat::kOpenAIStateDict, 42, pt16, at::kHalf);
  write_random_model("longclip-tiny", RandomModelFormat::kLongClipCheckpoint, 43, lc);
  EXPECT_THROW(
      write_random_model("longclip-tiny", RandomModelFormat::kHuggingFaceDir, 1, tmp.path() / "x"),
      std::invalid_argument);

  LoadedModel a = load_model(request(hf.string(), ModelFamily::kClip));
  LoadedModel b = load_model(request(pt.string(), ModelFamily::kClip));
  LoadedModel c = load_model(request(pt16.string(), ModelFamily::kClip));
  LoadedModel l = load_model(request(lc.parent_path().string(), ModelFamily::kLongClip));
  EXPECT_EQ(a.format, ModelFormat::kHuggingFaceDir);
  EXPECT_EQ(b.format, ModelFormat::kOpenAIStateDict);
  EXPECT_EQ(l.format, ModelFormat::kLongClipCheckpoint);
  EXPECT_EQ(l.weights_file, lc);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_NE(b.fingerprint, c.fingerprint);  // fp16 rounding changed the weights
  const auto [ai, at_] = features(a);
  const auto [bi, bt] = features(b);
  EXPECT_TRUE(torch::equal(ai, bi));
  EXPECT_TRUE(torch::equal(at_, bt));
  const auto [ci, ct] = features(c);
  EXPECT_LE(testing::max_abs_diff(ci, bi), 0.05);
  const auto [li, lt] = features(l);
  EXPECT_EQ(li.size(1), 32);
  // Scores are not all equal: different texts give different features.
  EXPECT_GT(testing::max_abs_diff(bt[0], bt[1]), 1e-3);
  EXPECT_GT(testing::max_abs_diff(lt[0], lt[1]), 1e-3);
  // Deterministic from the seed.
  write_random_model("tiny", RandomModelFormat::kOpenAIStateDict, 42, tmp.path() / "again.pt");
  StateDict sd;
  EXPECT_EQ(read_model_weights(request((tmp.path() / "again.pt").string()), sd).fingerprint,
            b.fingerprint);
}

// Torch's thread count is the program's to set (tune_process, models/weights/process_tuning.h):
// loading a model leaves it as it was.
TEST(LoadModel, LeavesTheThreadCountAlone) {
  const int before = at::get_num_threads();
  const int other = before == 1 ? 2 : 1;
  at::set_num_threads(other);
  load_model(request((kMicro / "openai_state_dict_fp32.pt").string()));
  EXPECT_EQ(at::get_num_threads(), other);
  at::set_num_threads(before);
}

}  // namespace
}  // namespace clipshard
