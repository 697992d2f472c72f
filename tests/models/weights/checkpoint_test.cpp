#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "common/micro_models.h"
#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/weights/npy.h"
#include "models/weights/python_check.h"
#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

using testing::fixtures;
using testing::golden;
using testing::keys_of;
using testing::micro;
using testing::read_file_bytes;
using testing::TempDir;
using testing::write_file_bytes;

TEST(DetectFormat, EveryMicroFile) {
  const std::pair<const char*, CheckpointFormat> cases[] = {
      {"openai_state_dict.pt", CheckpointFormat::kTorchZip},
      {"openai_state_dict_fp32.pt", CheckpointFormat::kTorchZip},
      {"openai_jit.pt", CheckpointFormat::kTorchScript},
      {"hf/model.safetensors", CheckpointFormat::kSafetensors},
      {"hf/pytorch_model.bin", CheckpointFormat::kTorchZip},
      {"longclip_micro.pt", CheckpointFormat::kTorchZip},
      {"longclip_dir/longclip_micro.pt", CheckpointFormat::kTorchZip},
      {"longclip_variants/longclip_micro.ckpt", CheckpointFormat::kTorchZip},
      {"longclip_variants/longclip_micro.bin", CheckpointFormat::kTorchZip},
      {"longclip_variants/a_decoy.pt", CheckpointFormat::kTorchZip},
  };
  for (const auto& [file, format] : cases) {
    EXPECT_EQ(detect_checkpoint_format(micro() / file), format) << file;
    EXPECT_FALSE(read_checkpoint(micro() / file).empty()) << file;
  }
  EXPECT_EQ(detect_checkpoint_format(fixtures() / "models/tiny/hf/model.safetensors"),
            CheckpointFormat::kSafetensors);
  EXPECT_EQ(detect_checkpoint_format(fixtures() / "models/longclip-tiny/model.pt"),
            CheckpointFormat::kTorchZip);
}

TEST(DetectFormat, NotCheckpoints) {
  TempDir dir;
  auto expect_not = [&](const std::filesystem::path& p, const std::string& needle) {
    try {
      detect_checkpoint_format(p);
      FAIL() << p << " detected as a checkpoint";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p.filename().string()), std::string::npos) << e.what();
    }
    EXPECT_THROW(read_checkpoint(p), CheckpointError) << p;
  };
  expect_not(micro() / "longclip_dir/README.txt", "not a checkpoint");
  expect_not(micro() / "golden.json", "not a checkpoint");
  expect_not(micro() / "inputs_openai64.npy", "not a checkpoint");
  write_file_bytes(dir.path() / "empty.pt", "");
  expect_not(dir.path() / "empty.pt", "not a checkpoint");
  std::mt19937 rng(5);
  std::string junk(5000, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  write_file_bytes(dir.path() / "random.bin", junk);
  expect_not(dir.path() / "random.bin", "not a checkpoint");
  // Pre-1.6 torch.save: named as such.
  write_file_bytes(dir.path() / "legacy.pt",
                   std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  expect_not(dir.path() / "legacy.pt", "legacy");
  // Truncated archives of both zip kinds: the zip reader names the problem.
  for (const char* f : {"openai_jit.pt", "openai_state_dict.pt"}) {
    const std::string real = read_file_bytes(micro() / f);
    write_file_bytes(dir.path() / f, real.substr(0, real.size() / 2));
    expect_not(dir.path() / f, "truncated");
  }
  const std::string st = read_file_bytes(micro() / "hf/model.safetensors");
  write_file_bytes(dir.path() / "cut.safetensors", st.substr(0, 4000));
  EXPECT_EQ(detect_checkpoint_format(dir.path() / "cut.safetensors"),
            CheckpointFormat::kSafetensors);
  try {
    read_checkpoint(dir.path() / "cut.safetensors");
    FAIL() << "read a truncated safetensors file";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than the file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_checkpoint(dir.path() / "missing.safetensors"), CheckpointError);
}

TEST(TorchScript, OpenAiJitArchive) {
  StateDict jit = read_torchscript(micro() / "openai_jit.pt");
  const auto& checks = golden()["checks"]["openai_jit"];
  EXPECT_EQ(keys_of(jit), checks["state_dict_keys"].get<std::set<std::string>>());
  for (const auto& [name, value] : checks["extra_keys_vs_eager"].items()) {
    const at::Tensor& t = jit.at(name);
    EXPECT_EQ(t.scalar_type(), at::kLong) << name;
    EXPECT_EQ(t.dim(), 0) << name;
    EXPECT_EQ(t.item<int64_t>(), value[0].get<int64_t>()) << name;
  }
  const auto fp16 = checks["fp16_keys"].get<std::set<std::string>>();
  EXPECT_EQ(fp16.size(), 35u);
  // The eager fp32 state dict holds the same numbers (fp16 ones exactly representable).
  StateDict full = read_torch_zip(micro() / "openai_state_dict_fp32.pt");
  for (const auto& [k, t] : jit) {
    EXPECT_TRUE(t.is_contiguous()) << k;
    EXPECT_FALSE(t.requires_grad()) << k;
    if (checks["extra_keys_vs_eager"].contains(k)) continue;
    EXPECT_EQ(t.scalar_type(), fp16.count(k) ? at::kHalf : at::kFloat) << k;
    EXPECT_TRUE(torch::equal(t.to(at::kFloat), full.at(k))) << k;
  }
  EXPECT_EQ(read_checkpoint(micro() / "openai_jit.pt").size(), jit.size());
}

TEST(CrossFormat, AllOpenAiFilesHoldTheSameTensors) {
  StateDict ref = read_checkpoint(micro() / "openai_state_dict_fp32.pt");
  for (const char* f : {"openai_state_dict.pt", "openai_jit.pt"}) {
    StateDict sd = read_checkpoint(micro() / f);
    for (const auto& [k, t] : ref) {
      ASSERT_TRUE(sd.count(k)) << f << " " << k;
      EXPECT_TRUE(torch::equal(sd.at(k).to(at::kFloat), t)) << f << " " << k;
    }
  }
  for (const char* f : {"hf/model.safetensors", "hf/pytorch_model.bin"}) {
    StateDict hf = read_checkpoint(micro() / f);
    EXPECT_TRUE(
        torch::equal(hf.at("visual_projection.weight").t().to(at::kFloat), ref.at("visual.proj")))
        << f;
    EXPECT_TRUE(torch::equal(hf.at("text_model.final_layer_norm.bias").to(at::kFloat),
                             ref.at("ln_final.bias")))
        << f;
    EXPECT_TRUE(torch::equal(hf.at("vision_model.post_layernorm.weight").to(at::kFloat),
                             ref.at("visual.ln_post.weight")))
        << f;
  }
  StateDict lc = read_checkpoint(micro() / "longclip_micro.pt");
  for (const char* f : {"longclip_variants/longclip_micro.ckpt",
                        "longclip_variants/longclip_micro.bin", "longclip_dir/longclip_micro.pt"}) {
    StateDict sd = read_checkpoint(micro() / f);
    ASSERT_EQ(keys_of(sd), keys_of(lc)) << f;
    for (const auto& [k, t] : lc) EXPECT_TRUE(torch::equal(sd.at(k), t)) << f << " " << k;
  }
}

TEST(Writers, OutputsAreDetectedAndReadBack) {
  TempDir dir;
  StateDict sd = read_checkpoint(micro() / "openai_state_dict.pt");
  write_safetensors(dir.path() / "m.safetensors", sd);
  write_torch_zip(dir.path() / "m.pt", sd, "m");
  EXPECT_EQ(detect_checkpoint_format(dir.path() / "m.safetensors"), CheckpointFormat::kSafetensors);
  EXPECT_EQ(detect_checkpoint_format(dir.path() / "m.pt"), CheckpointFormat::kTorchZip);
  for (const char* f : {"m.safetensors", "m.pt"}) {
    StateDict back = read_checkpoint(dir.path() / f);
    ASSERT_EQ(keys_of(back), keys_of(sd)) << f;
    for (const auto& [k, t] : sd) EXPECT_TRUE(torch::equal(back.at(k), t)) << f << " " << k;
  }
  EXPECT_THROW(write_torch_zip(dir.path() / "no/such/dir/m.pt", sd), CheckpointError);
  EXPECT_THROW(write_safetensors(dir.path() / "no/such/dir/m.safetensors", sd), CheckpointError);
  StateDict complex;
  complex["c"] = torch::zeros({2}, at::kComplexFloat);
  EXPECT_THROW(write_safetensors(dir.path() / "c.safetensors", complex), CheckpointError);
  EXPECT_THROW(write_torch_zip(dir.path() / "c.pt", complex), CheckpointError);
}

TEST(Npy, ReadsMicroInputs) {
  at::Tensor openai = read_npy(micro() / "inputs_openai64.npy");
  EXPECT_EQ(openai.sizes(), at::IntArrayRef({3, 3, 64, 64}));
  EXPECT_EQ(openai.scalar_type(), at::kFloat);
  at::Tensor lc = read_npy(micro() / "inputs_longclip56.npy");
  EXPECT_EQ(lc.sizes(), at::IntArrayRef({3, 3, 56, 56}));
  // Image 0 is the gradient: B = 128 everywhere, normalised with CLIP's mean/std for blue.
  const float blue = (128.f / 255.f - 0.40821073f) / 0.27577711f;
  EXPECT_NEAR(openai[0][2].min().item<float>(), blue, 1e-6);
  EXPECT_NEAR(openai[0][2].max().item<float>(), blue, 1e-6);
  // Red is 255*x//63 along x: levels 0 at x=0 and 255 at x=63.
  EXPECT_NEAR(openai[0][0][5][0].item<float>(), (0.f - 0.48145466f) / 0.26862954f, 1e-6);
  EXPECT_NEAR(openai[0][0][5][63].item<float>(), (1.f - 0.48145466f) / 0.26862954f, 1e-6);
}

TEST(Npy, PythonWrittenArraysAndBadFiles) {
  TempDir dir;
  if (testing::python_torch_available()) {
    int rc = 0;
    const std::string out = testing::run_python(dir.path(), R"PY(
import numpy as np, sys
np.save(sys.argv[1] + '/a.npy', np.arange(24, dtype='<i8').reshape(2, 3, 4) - 5)
np.save(sys.argv[1] + '/s.npy', np.float32(3.5))
np.save(sys.argv[1] + '/f.npy', np.asfortranarray(np.ones((2, 3), dtype='<f4')))
np.save(sys.argv[1] + '/d.npy', np.ones(3, dtype='<f8'))
)PY",
                                                dir.path().string(), &rc);
    ASSERT_EQ(rc, 0) << out;
    at::Tensor a = read_npy(dir.path() / "a.npy");
    EXPECT_TRUE(torch::equal(a, torch::arange(24, at::kLong).reshape({2, 3, 4}) - 5));
    at::Tensor s = read_npy(dir.path() / "s.npy");
    EXPECT_EQ(s.dim(), 0);
    EXPECT_EQ(s.item<float>(), 3.5f);
    EXPECT_THROW(read_npy(dir.path() / "f.npy"), CheckpointError);
    EXPECT_THROW(read_npy(dir.path() / "d.npy"), CheckpointError);
  }
  const std::string real = read_file_bytes(micro() / "inputs_openai64.npy");
  write_file_bytes(dir.path() / "cut.npy", real.substr(0, real.size() - 4));
  EXPECT_THROW(read_npy(dir.path() / "cut.npy"), CheckpointError);
  write_file_bytes(dir.path() / "empty.npy", "");
  EXPECT_THROW(read_npy(dir.path() / "empty.npy"), CheckpointError);
}

}  // namespace
}  // namespace clipshard
