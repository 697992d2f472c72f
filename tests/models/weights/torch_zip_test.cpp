#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "common/micro_models.h"
#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/weights/python_check.h"
#include "models/weights/state_dict.h"
#include "models/weights/zip_archive.h"

namespace clipshard {
namespace {

using testing::fixtures;
using testing::golden;
using testing::keys_of;
using testing::micro;
using testing::read_file_bytes;
using testing::TempDir;
using testing::write_file_bytes;

std::set<std::string> golden_keys(const nlohmann::json& list) {
  return list.get<std::set<std::string>>();
}

void expect_equal_dicts(const StateDict& a, const StateDict& b, const std::string& what) {
  ASSERT_EQ(keys_of(a), keys_of(b)) << what;
  for (const auto& [k, t] : a) {
    EXPECT_EQ(t.scalar_type(), b.at(k).scalar_type()) << what << " " << k;
    EXPECT_TRUE(torch::equal(t, b.at(k))) << what << " " << k;
  }
}

TEST(TorchZip, ReadsOpenAiStateDictFp16OrderedDict) {
  StateDict sd = read_torch_zip(micro() / "openai_state_dict.pt");
  EXPECT_EQ(keys_of(sd), golden_keys(golden()["checks"]["openai_state_dict_keys"]));
  for (const auto& [k, t] : sd) {
    EXPECT_EQ(t.scalar_type(), at::kHalf) << k;
    EXPECT_TRUE(t.is_contiguous()) << k;
  }
  EXPECT_EQ(sd.at("positional_embedding").sizes(), at::IntArrayRef({77, 64}));
  EXPECT_EQ(sd.at("visual.conv1.weight").sizes(), at::IntArrayRef({64, 3, 32, 32}));
  EXPECT_EQ(sd.at("logit_scale").dim(), 0);
}

TEST(TorchZip, Fp16AndFp32StateDictsHoldTheSameValues) {
  StateDict half = read_torch_zip(micro() / "openai_state_dict.pt");
  StateDict full = read_torch_zip(micro() / "openai_state_dict_fp32.pt");  // a plain dict
  ASSERT_EQ(keys_of(half), keys_of(full));
  for (const auto& [k, t] : full) {
    EXPECT_EQ(t.scalar_type(), at::kFloat) << k;
    EXPECT_TRUE(torch::equal(half.at(k).to(at::kFloat), t)) << k;
    EXPECT_TRUE(torch::equal(t.to(at::kHalf), half.at(k))) << k;
  }
  // logit_scale = log(1/0.07) as drawn by clip.model.CLIP.
  EXPECT_NEAR(full.at("logit_scale").item<float>(), std::log(1 / 0.07), 2e-3);
}

TEST(TorchZip, HuggingFaceBinEqualsSafetensorsAndMapsToOpenAiNames) {
  StateDict bin = read_torch_zip(micro() / "hf/pytorch_model.bin");
  StateDict st = read_safetensors(micro() / "hf/model.safetensors");
  expect_equal_dicts(bin, st, "pytorch_model.bin vs model.safetensors");

  StateDict oa = read_torch_zip(micro() / "openai_state_dict.pt");
  auto eq = [&](const at::Tensor& a, const at::Tensor& b, const std::string& what) {
    ASSERT_EQ(a.sizes(), b.sizes()) << what;
    EXPECT_TRUE(torch::equal(a.contiguous(), b.contiguous())) << what;
  };
  eq(oa.at("visual.proj"), st.at("visual_projection.weight").t(), "visual.proj");
  eq(oa.at("text_projection"), st.at("text_projection.weight").t(), "text_projection");
  eq(oa.at("token_embedding.weight"), st.at("text_model.embeddings.token_embedding.weight"),
     "token_embedding");
  eq(oa.at("positional_embedding"), st.at("text_model.embeddings.position_embedding.weight"),
     "positional_embedding");
  eq(oa.at("visual.class_embedding"), st.at("vision_model.embeddings.class_embedding"),
     "class_embedding");
  eq(oa.at("visual.conv1.weight"), st.at("vision_model.embeddings.patch_embedding.weight"),
     "conv1");
  eq(oa.at("visual.ln_pre.weight"), st.at("vision_model.pre_layrnorm.weight"), "ln_pre");
  eq(oa.at("logit_scale"), st.at("logit_scale"), "logit_scale");
  const std::string l0 = "vision_model.encoder.layers.0.self_attn.";
  eq(oa.at("visual.transformer.resblocks.0.attn.in_proj_weight"),
     torch::cat(
         {st.at(l0 + "q_proj.weight"), st.at(l0 + "k_proj.weight"), st.at(l0 + "v_proj.weight")}),
     "in_proj_weight");
  eq(oa.at("transformer.resblocks.1.mlp.c_fc.weight"),
     st.at("text_model.encoder.layers.1.mlp.fc1.weight"), "c_fc");
}

TEST(TorchZip, ReadsEveryLongClipVariantAndTheyAgree) {
  StateDict ref = read_torch_zip(micro() / "longclip_micro.pt");
  EXPECT_EQ(keys_of(ref), golden_keys(golden()["checks"]["longclip_state_dict_keys"]));
  EXPECT_EQ(ref.at("positional_embedding").sizes(), at::IntArrayRef({248, 64}));
  EXPECT_EQ(ref.at("positional_embedding_res").sizes(), at::IntArrayRef({248, 64}));
  for (const char* f : {"longclip_dir/longclip_micro.pt", "longclip_variants/longclip_micro.ckpt",
                        "longclip_variants/longclip_micro.bin"}) {
    expect_equal_dicts(ref, read_torch_zip(micro() / f), f);
  }
}

TEST(TorchZip, ReadsDecoyAndTinyLongClip) {
  StateDict decoy = read_torch_zip(micro() / "longclip_variants/a_decoy.pt");
  ASSERT_EQ(decoy.size(), 1u);
  EXPECT_TRUE(torch::equal(decoy.at("not_a_longclip_model"), torch::zeros({1})));

  StateDict tiny = read_torch_zip(fixtures() / "models/longclip-tiny/model.pt");
  EXPECT_GT(tiny.size(), 50u);
  EXPECT_EQ(tiny.at("positional_embedding").size(0), 248);
  EXPECT_EQ(tiny.at("token_embedding.weight").size(0), 49408);
}

// Writers -------------------------------------------------------------------------------------

StateDict sample_with_views() {
  torch::manual_seed(11);
  StateDict sd;
  at::Tensor base = torch::randn({10, 8}).to(at::kHalf);
  sd["base"] = base;
  sd["rows"] = base.slice(0, 2, 5);                          // offset 16, contiguous
  sd["strided"] = base.slice(0, 1, 9, 3).slice(1, 1, 7, 2);  // offset + strides
  sd["transposed"] = base.t();
  sd["f32"] = torch::randn({3, 4, 5});
  sd["bf16"] = torch::randn({6}).to(at::kBFloat16);
  sd["i64"] = torch::tensor({int64_t{1} << 40, int64_t{-3}, int64_t{7}}, at::kLong);
  sd["scalar"] = torch::tensor(64, at::kLong);
  sd["flag"] = torch::tensor({true, false, true});
  sd["empty"] = torch::zeros({0, 4});
  sd["big_dims"] = torch::ones({70000, 1}, at::kByte);  // BININT (> 65535) in the pickle
  return sd;
}

void expect_values(const StateDict& expected, const StateDict& got) {
  ASSERT_EQ(keys_of(expected), keys_of(got));
  for (const auto& [k, t] : expected) {
    const at::Tensor& u = got.at(k);
    EXPECT_EQ(t.scalar_type(), u.scalar_type()) << k;
    EXPECT_EQ(t.sizes(), u.sizes()) << k;
    EXPECT_TRUE(u.is_contiguous()) << k;
    EXPECT_TRUE(torch::equal(t.contiguous(), u)) << k;
  }
}

TEST(TorchZipWriter, RoundTripsViewsDtypesAndSharedStorage) {
  TempDir dir;
  StateDict sd = sample_with_views();
  const auto file = dir.path() / "model.pt";
  write_torch_zip(file, sd, "my_root");
  expect_values(sd, read_torch_zip(file));
  EXPECT_EQ(detect_checkpoint_format(file), CheckpointFormat::kTorchZip);

  const std::string bytes = read_file_bytes(file);
  ZipReader zip(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "model.pt");
  size_t storages = 0;
  for (const auto& e : zip.entries()) {
    EXPECT_EQ(e.name.rfind("my_root/", 0), 0u) << e.name;
    if (e.name.rfind("my_root/data/", 0) == 0) {
      ++storages;
      std::vector<uint8_t> scratch;
      auto data = zip.read(e, &scratch, true);
      const auto offset = data.data - reinterpret_cast<const uint8_t*>(bytes.data());
      EXPECT_EQ(offset % 64, 0) << e.name;
    }
  }
  // base/rows/strided/transposed share one storage.
  EXPECT_EQ(storages, sd.size() - 3);
  std::vector<uint8_t> scratch;
  auto version = zip.read(*zip.find("my_root/version"), &scratch, true);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(version.data), version.size), "3\n");
}

TEST(TorchZipWriter, Zip64RecordsRoundTrip) {
  TempDir dir;
  StateDict sd = sample_with_views();
  TorchZipWriteOptions options;
  options.force_zip64 = true;
  const auto file = dir.path() / "zip64.pt";
  write_torch_zip(file, sd, options);
  expect_values(sd, read_torch_zip(file));
}

// Prints "name dtype shape sum" for every tensor of torch.load(path) plus structure checks.
const char* kTorchLoadScript = R"PY(
import collections, sys, torch
sd = torch.load(sys.argv[1], map_location='cpu')
assert isinstance(sd, collections.OrderedDict), type(sd)
if 'base' in sd:
    assert sd['base'].storage().data_ptr() == sd['strided'].storage().data_ptr()
    assert sd['strided'].storage_offset() == 9 and sd['strided'].stride() == (24, 2)
for k, t in sd.items():
    print(k, str(t.dtype).replace('torch.', ''), list(t.shape), repr(float(t.double().sum())))
)PY";

void expect_python_reads(const StateDict& sd, const std::filesystem::path& file,
                         const std::filesystem::path& dir) {
  int rc = 0;
  const std::string out = testing::run_python(dir, kTorchLoadScript, file.string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string key, dtype, rest;
  size_t seen = 0;
  while (lines >> key >> dtype) {
    std::getline(lines, rest);
    const double py_sum = std::stod(rest.substr(rest.rfind(' ') + 1));
    ASSERT_TRUE(sd.count(key)) << key;
    EXPECT_EQ(py_sum, sd.at(key).to(at::kDouble).sum().item<double>()) << key;
    ++seen;
  }
  EXPECT_EQ(seen, sd.size()) << out;
}

TEST(TorchZipWriter, PythonTorchLoadReadsWhatWeWrite) {
  if (!testing::python_torch_available()) GTEST_SKIP() << "/usr/bin/python3 with torch missing";
  TempDir dir;
  StateDict sd = sample_with_views();
  write_torch_zip(dir.path() / "plain.pt", sd);
  expect_python_reads(sd, dir.path() / "plain.pt", dir.path());
  TorchZipWriteOptions options;
  options.force_zip64 = true;
  options.archive_root = "zip64_root";
  write_torch_zip(dir.path() / "zip64.pt", sd, options);
  expect_python_reads(sd, dir.path() / "zip64.pt", dir.path());
}

TEST(TorchZip, ReadsDeflatedAndPythonZip64Archives) {
  if (!testing::python_torch_available()) GTEST_SKIP() << "/usr/bin/python3 with torch missing";
  TempDir dir;
  // Re-packs a fixture with deflate (every entry) and zip64 local records.
  const char* script = R"PY(
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        with zout.open(info.filename, 'w', force_zip64=True) as f:
            f.write(zin.read(info.filename))
print('ok')
)PY";
  const auto src = micro() / "longclip_variants/longclip_micro.ckpt";
  const auto dst = dir.path() / "deflated.ckpt";
  int rc = 0;
  const std::string out =
      testing::run_python(dir.path(), script, src.string() + " " + dst.string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  expect_equal_dicts(read_torch_zip(src), read_torch_zip(dst), "deflated copy");
}

TEST(TorchZip, ReadsWhatPythonSaves) {
  if (!testing::python_torch_available()) GTEST_SKIP() << "/usr/bin/python3 with torch missing";
  TempDir dir;
  // Lightning-style nesting with other Python values around the state dict, Parameters, views into
  // a shared storage, bf16/int64/bool, a 0-d tensor and an expand()ed buffer (stride 0).
  const char* script = R"PY(
import collections, sys, torch
d = sys.argv[1]
torch.manual_seed(3)
base = torch.randn(6, 5)
sd = collections.OrderedDict()
sd['w'] = torch.nn.Parameter(torch.randn(4, 3))
sd['base'] = base
sd['col'] = base[:, 2]
sd['tail'] = base[3:]
sd['bf'] = torch.randn(7).bfloat16()
sd['ids'] = torch.arange(77).expand(1, -1)
sd['n'] = torch.tensor(5)
sd['mask'] = torch.tensor([True, False])
sd._metadata = collections.OrderedDict({'': {'version': 1}})
torch.save({'epoch': 3, 'global_step': 123456789012, 'state_dict': sd,
            'hyper_parameters': {'lr': 0.1, 'name': 'x', 'betas': (0.9, 0.98), 'flag': None,
                                 'layers': [1, 2, 3], 'neg': -7}}, d + '/lightning.ckpt')
torch.save({'model': sd}, d + '/model_key.pt')
torch.save(sd, d + '/plain.pt')
torch.save({'x': torch.ones(2)}, d + '/legacy.pt', _use_new_zipfile_serialization=False)
for k, t in sd.items():
    print(k, repr(float(t.double().sum())), list(t.shape))
)PY";
  int rc = 0;
  const std::string out = testing::run_python(dir.path(), script, dir.path().string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  std::map<std::string, double> sums;
  std::istringstream lines(out);
  std::string key, sum, rest;
  while (lines >> key >> sum) {
    std::getline(lines, rest);
    sums[key] = std::stod(sum);
  }
  ASSERT_EQ(sums.size(), 8u) << out;
  for (const char* f : {"lightning.ckpt", "model_key.pt", "plain.pt"}) {
    StateDict sd = read_torch_zip(dir.path() / f);
    ASSERT_EQ(sd.size(), sums.size()) << f;
    for (const auto& [k, v] : sums) {
      ASSERT_TRUE(sd.count(k)) << f << " " << k;
      EXPECT_EQ(sd.at(k).to(at::kDouble).sum().item<double>(), v) << f << " " << k;
      EXPECT_TRUE(sd.at(k).is_contiguous()) << k;
    }
    EXPECT_TRUE(torch::equal(sd.at("col"), sd.at("base").select(1, 2))) << f;
    EXPECT_TRUE(torch::equal(sd.at("tail"), sd.at("base").slice(0, 3))) << f;
    EXPECT_EQ(sd.at("ids").sizes(), at::IntArrayRef({1, 77}));
    EXPECT_EQ(sd.at("bf").scalar_type(), at::kBFloat16);
    EXPECT_EQ(sd.at("mask").scalar_type(), at::kBool);
    EXPECT_EQ(sd.at("n").item<int64_t>(), 5);
  }
  try {
    read_checkpoint(dir.path() / "legacy.pt");
    FAIL() << "read a legacy torch.save file";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("legacy"), std::string::npos) << e.what();
  }
}

// Hostile files --------------------------------------------------------------------------------

void expect_checkpoint_error(const std::string& bytes, const std::string& needle,
                             bool verify_crc = true) {
  try {
    parse_torch_zip(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "evil.pt",
                    verify_crc);
    FAIL() << "accepted a hostile archive (expected: " << needle << ")";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("evil.pt"), std::string::npos) << e.what();
  }
}

// An archive with the given data.pkl and one 16-byte float storage "0".
std::string archive_with_pickle(const std::string& pkl, const std::filesystem::path& dir) {
  const auto file = dir / "crafted.pt";
  ZipWriter zip(file, false);
  zip.add("archive/data.pkl", pkl.data(), pkl.size());
  const float values[4] = {1, 2, 3, 4};
  zip.add("archive/data/0", values, sizeof values);
  zip.add("archive/version", "3\n", 2);
  zip.finish();
  return read_file_bytes(file);
}

// Pickle bytes from a literal that may hold NULs.
template <size_t N>
std::string lit(const char (&s)[N]) {
  return std::string(s, N - 1);
}

// BINUNICODE of `s`.
std::string uni(const std::string& s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(s.size() >> (8 * i)));
  return out + s;
}

std::string int1(int v) { return "K" + std::string(1, static_cast<char>(v)); }

// A pickle of {'t': _rebuild_tensor_v2(storage(key, storage_class, numel), offset, (size,),
// (stride,))}.
std::string tensor_pickle_ops(int numel, int offset, const std::string& size_op, int stride,
                              const std::string& storage_class = "FloatStorage",
                              const std::string& key = "0") {
  return lit("\x80\x02}(") + uni("t") + "ctorch._utils\n_rebuild_tensor_v2\n((" + uni("storage") +
         "ctorch\n" + storage_class + "\n" + uni(key) + uni("cpu") + int1(numel) + "tQ" +
         int1(offset) + size_op + "\x85" + int1(stride) + "\x85" + lit("\x89)tRu.");
}
std::string tensor_pickle(int numel, int offset, int size, int stride,
                          const std::string& storage_class = "FloatStorage",
                          const std::string& key = "0") {
  return tensor_pickle_ops(numel, offset, int1(size), stride, storage_class, key);
}

TEST(TorchZip, CraftedPicklesAreValidatedAndNothingIsExecuted) {
  TempDir dir;
  {
    StateDict ok =
        parse_torch_zip(reinterpret_cast<const uint8_t*>(
                            archive_with_pickle(tensor_pickle(4, 1, 3, 1), dir.path()).data()),
                        archive_with_pickle(tensor_pickle(4, 1, 3, 1), dir.path()).size(), "ok.pt");
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_TRUE(torch::equal(ok.at("t"), torch::tensor({2.f, 3.f, 4.f})));
  }
  expect_checkpoint_error(archive_with_pickle(tensor_pickle(4, 2, 3, 1), dir.path()),
                          "reaches past its storage");
  expect_checkpoint_error(archive_with_pickle(tensor_pickle(4, 0, 3, 2), dir.path()),
                          "reaches past its storage");
  // Stride 0 repeats elements (expand()); a huge repeat of a tiny storage is refused.
  expect_checkpoint_error(
      archive_with_pickle(tensor_pickle_ops(4, 0, lit("\x8a\x05\x00\x00\x00\x00\x01"), 0),
                          dir.path()),
      "repeats a storage");
  {
    const std::string expanded = archive_with_pickle(tensor_pickle(4, 2, 200, 0), dir.path());
    StateDict sd = parse_torch_zip(reinterpret_cast<const uint8_t*>(expanded.data()),
                                   expanded.size(), "expanded.pt");
    EXPECT_TRUE(torch::equal(sd.at("t"), torch::full({200}, 3.f)));
  }
  expect_checkpoint_error(archive_with_pickle(tensor_pickle(5, 0, 3, 1), dir.path()),
                          "claims 5 elements");
  expect_checkpoint_error(
      archive_with_pickle(tensor_pickle(4, 0, 3, 1, "DoubleStorage"), dir.path()),
      "claims 4 elements");
  expect_checkpoint_error(archive_with_pickle(tensor_pickle(4, 0, 3, 1, "os"), dir.path()),
                          "unsupported global 'torch.os'");
  expect_checkpoint_error(
      archive_with_pickle(lit("\x80\x02\x63os\nsystem\nX\x02\x00\x00\x00lsR."), dir.path()),
      "unsupported global 'os.system'");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02\x63posix\nsystem\n\x85R."), dir.path()),
                          "posix.system");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02}X\x01\x00\x00\x00k\x81."), dir.path()),
                          "unsupported pickle opcode 0x81");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02}X\x01\x00\x00\x00k"), dir.path()),
                          "truncated");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02h\x05."), dir.path()), "memo");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02u."), dir.path()), "MARK");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02."), dir.path()), "underflow");
  expect_checkpoint_error(archive_with_pickle(lit("\x80\x02]K\x01\x61."), dir.path()),
                          "not a dict of tensors");
  expect_checkpoint_error(
      archive_with_pickle(lit("\x80\x02}X\x01\x00\x00\x00kK\x01s."), dir.path()),
      "holds no tensors");
  expect_checkpoint_error(
      archive_with_pickle(lit("\x80\x02(X\x01\x00\x00\x00kK\x01tQ."), dir.path()), "persistent id");
  expect_checkpoint_error(
      archive_with_pickle(tensor_pickle(4, 0, 4, 1, "FloatStorage", "9"), dir.path()),
      "has no entry");
}

TEST(TorchZip, CorruptedArchivesThrow) {
  TempDir dir;
  const std::string real = read_file_bytes(micro() / "openai_state_dict.pt");
  expect_checkpoint_error(real.substr(0, real.size() / 2), "truncated");
  expect_checkpoint_error("", "too short");
  expect_checkpoint_error(real.substr(0, 100), "end-of-central-directory");
  {
    // Central directory offset moved past the end of the file.
    std::string bad = real;
    const size_t eocd = bad.rfind("PK\x05\x06");
    bad[eocd + 19] = '\x7f';
    const size_t eocd64 = bad.rfind("PK\x06\x06");  // torch.save always writes zip64 records
    ASSERT_NE(eocd64, std::string::npos);
    bad[eocd64 + 48 + 6] = '\x7f';
    expect_checkpoint_error(bad, "central directory");
  }
  {
    // Garbage over the central directory records.
    std::string bad = real;
    const size_t eocd = bad.rfind("PK\x05\x06");
    const uint32_t cd_offset = static_cast<uint8_t>(bad[eocd + 16]) |
                               static_cast<uint8_t>(bad[eocd + 17]) << 8 |
                               static_cast<uint8_t>(bad[eocd + 18]) << 16;
    for (size_t i = cd_offset; i < cd_offset + 200; ++i) bad[i] = static_cast<char>(i * 7);
    expect_checkpoint_error(bad, "central directory entry 0");
  }
  {
    // A flipped byte of tensor data fails the CRC.
    std::string bad = real;
    const size_t data0 = bad.find("openai_state_dict/data/0");
    bad[data0 + 200] ^= 0x55;
    expect_checkpoint_error(bad, "CRC");
  }
  // A TorchScript archive is not a state dict archive.
  expect_checkpoint_error(read_file_bytes(micro() / "openai_jit.pt"), "TorchScript");
}

TEST(TorchZip, RandomAndMutatedBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string junk(rng() % 2048, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (trial % 3 == 0 && junk.size() > 30) junk.replace(0, 4, "PK\x03\x04");
    EXPECT_THROW(parse_torch_zip(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "j"),
                 CheckpointError);
  }
  // Every byte of a small real archive, changed, with the CRC check off so that the pickle
  // interpreter sees the damage: either it still parses or it throws CheckpointError.
  const std::string real = read_file_bytes(micro() / "longclip_variants/a_decoy.pt");
  size_t rejected = 0;
  for (size_t i = 0; i < real.size(); ++i) {
    for (uint8_t delta : {1, 0x80, 0xff}) {
      std::string m = real;
      m[i] = static_cast<char>(static_cast<uint8_t>(m[i]) + delta);
      try {
        parse_torch_zip(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "m", false);
      } catch (const CheckpointError&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, real.size());  // most mutations are detected
}

}  // namespace
}  // namespace clipshard
