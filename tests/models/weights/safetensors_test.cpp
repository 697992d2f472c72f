#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/weights/python_check.h"
#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

using testing::fixtures;
using testing::read_file_bytes;
using testing::TempDir;
using testing::write_file_bytes;

// A safetensors file from a header text and a data section.
std::string safetensors_bytes(const std::string& header, const std::string& payload) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + payload;
}

// Expects parse_safetensors to throw CheckpointError whose message contains every `needles`.
void expect_rejected(const std::string& bytes, std::initializer_list<std::string> needles) {
  try {
    parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.st");
    FAIL() << "accepted a hostile file";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.st"), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(Safetensors, ReadsMicroHuggingFaceFile) {
  StateDict sd = read_safetensors(fixtures() / "models/micro/hf/model.safetensors");
  EXPECT_EQ(sd.size(), 78u);
  const at::Tensor& scale = sd.at("logit_scale");
  EXPECT_EQ(scale.dim(), 0);
  EXPECT_EQ(scale.scalar_type(), at::kHalf);
  EXPECT_EQ(sd.at("visual_projection.weight").sizes(), at::IntArrayRef({16, 64}));
  EXPECT_EQ(sd.at("text_model.embeddings.token_embedding.weight").sizes(),
            at::IntArrayRef({1024, 64}));
  EXPECT_EQ(sd.at("text_model.embeddings.position_embedding.weight").sizes(),
            at::IntArrayRef({77, 64}));
  for (const auto& [k, t] : sd) {
    EXPECT_TRUE(t.is_contiguous()) << k;
    EXPECT_TRUE(t.device().is_cpu()) << k;
    EXPECT_EQ(t.scalar_type(), at::kHalf) << k;
    EXPECT_TRUE(torch::isfinite(t.to(at::kFloat)).all().item<bool>()) << k;
  }
}

TEST(Safetensors, ReadsTinyHuggingFaceFile) {
  StateDict sd = read_safetensors(fixtures() / "models/tiny/hf/model.safetensors");
  ASSERT_GT(sd.size(), 10u);
  EXPECT_EQ(sd.at("text_model.embeddings.token_embedding.weight").size(0), 49408);
  EXPECT_EQ(sd.at("logit_scale").dim(), 0);
}

StateDict all_dtypes() {
  torch::manual_seed(7);
  StateDict sd;
  sd["f16"] = torch::randn({3, 5}).to(at::kHalf);
  sd["bf16"] = torch::randn({4}).to(at::kBFloat16);
  sd["f32"] = torch::randn({2, 3, 4});
  sd["f64"] = torch::randn({7}, at::kDouble);
  sd["i64"] = torch::randint(-1000000, 1000000, {5}, at::kLong);
  sd["i32"] = torch::randint(-1000, 1000, {2, 2}, at::kInt);
  sd["i16"] = torch::randint(-1000, 1000, {3}, at::kShort);
  sd["i8"] = torch::randint(-100, 100, {9}, at::kChar);
  sd["u8"] = torch::randint(0, 255, {1, 1, 3}, at::kByte);
  sd["bool"] = torch::randint(0, 2, {6}, at::kLong).to(at::kBool);
  sd["scalar"] = torch::tensor(2.5f);
  sd["empty"] = torch::zeros({0, 3});
  // A non-contiguous view with a storage offset: written as its values.
  at::Tensor base = torch::arange(40, at::kFloat).reshape({5, 8});
  sd["view"] = base.slice(0, 1, 4).slice(1, 2, 7, 2);
  return sd;
}

void expect_same(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    const at::Tensor& u = b.at(k);
    EXPECT_EQ(t.scalar_type(), u.scalar_type()) << k;
    EXPECT_EQ(t.sizes(), u.sizes()) << k;
    EXPECT_TRUE(torch::equal(t.contiguous(), u)) << k;
  }
}

TEST(Safetensors, WriterRoundTripsEveryDtype) {
  TempDir dir;
  const auto file = dir.path() / "all.safetensors";
  StateDict sd = all_dtypes();
  write_safetensors(file, sd);
  expect_same(sd, read_safetensors(file));

  // Header padded with spaces to 8 bytes, data of every tensor aligned to its element size.
  const std::string bytes = read_file_bytes(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  for (const auto& [k, info] : header.items()) {
    if (k == "__metadata__") continue;
    const uint64_t begin = info["data_offsets"][0];
    EXPECT_EQ(begin % sd.at(k).element_size(), 0u) << k;
  }
}

TEST(Safetensors, PythonReadsWhatWeWrite) {
  if (!testing::python_torch_available()) GTEST_SKIP() << "/usr/bin/python3 with torch missing";
  TempDir dir;
  const auto file = dir.path() / "all.safetensors";
  StateDict sd = all_dtypes();
  write_safetensors(file, sd);
  // Parses the file per the specification (safetensors is not installed) and prints
  // "name dtype shape sum" per tensor; the data section must be covered without holes.
  const std::string script = R"PY(
import json, struct, sys, torch
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[:8])[0]
assert (8 + n) % 8 == 0
h = json.loads(d[8:8 + n])
data = d[8 + n:]
dt = {'F16': torch.float16, 'BF16': torch.bfloat16, 'F32': torch.float32, 'F64': torch.float64,
      'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
      'U8': torch.uint8, 'BOOL': torch.bool}
ends = []
for k, v in sorted(h.items()):
    if k == '__metadata__':
        continue
    b, e = v['data_offsets']
    ends.append((b, e))
    raw = bytearray(data[b:e])
    t = torch.frombuffer(raw, dtype=dt[v['dtype']]) if e > b else torch.empty(0, dtype=dt[v['dtype']])
    t = t.reshape(v['shape'])
    print(k, v['dtype'], list(t.shape), repr(float(t.double().sum())))
ends.sort()
pos = 0
for b, e in ends:
    assert b == pos, (b, pos)
    pos = e
assert pos == len(data)
)PY";
  int rc = 0;
  const std::string out = testing::run_python(dir.path(), script, file.string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string key, dtype, rest;
  size_t seen = 0;
  while (lines >> key >> dtype) {
    std::getline(lines, rest);
    const auto sum_pos = rest.rfind(' ');
    const double py_sum = std::stod(rest.substr(sum_pos + 1));
    const double cpp_sum = sd.at(key).to(at::kDouble).sum().item<double>();
    EXPECT_EQ(py_sum, cpp_sum) << key;
    ++seen;
  }
  EXPECT_EQ(seen, sd.size()) << out;
}

TEST(Safetensors, RejectsHostileFiles) {
  const std::string ok_tensor = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string payload(8, '\x01');
  // Sanity: the well-formed variant is accepted.
  {
    const std::string good = safetensors_bytes(ok_tensor, payload);
    StateDict sd =
        parse_safetensors(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "ok");
    ASSERT_EQ(sd.size(), 1u);
  }
  expect_rejected("", {"8-byte"});
  expect_rejected("1234567", {"8-byte"});
  {
    std::string lying = safetensors_bytes(ok_tensor, payload);
    lying[0] = static_cast<char>(0xff);
    lying[3] = static_cast<char>(0x7f);
    expect_rejected(lying, {"larger than the file"});
    lying[7] = static_cast<char>(0xff);  // 2^63 and more
    expect_rejected(lying, {"larger than the file"});
  }
  expect_rejected(safetensors_bytes("{\"t\": [1, 2", payload), {"JSON"});
  expect_rejected(safetensors_bytes("[1, 2]", payload), {"JSON object"});
  expect_rejected(
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", payload),
      {"'t'", "outside"});
  expect_rejected(
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", payload),
      {"'t'", "outside"});
  expect_rejected(safetensors_bytes(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                    payload + "xxxx"),
                  {"'t'", "needs 12"});
  expect_rejected(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}})",
                                    payload + "xxxx"),
                  {"overlap"});
  expect_rejected(
      safetensors_bytes(
          R"({"t":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})",
          payload),
      {"'t'", "overflow"});
  expect_rejected(
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", payload),
      {"'t'", "non-negative"});
  expect_rejected(
      safetensors_bytes(R"({"t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", payload),
      {"'t'", "C64"});
  expect_rejected(safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2]}})", payload),
                  {"'t'", "data_offsets"});
  expect_rejected(
      safetensors_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0.5,8]}})", payload),
      {"'t'"});
  expect_rejected(safetensors_bytes(R"({"t":7})", payload), {"'t'"});
}

TEST(Safetensors, RejectsTruncatedAndRandomFiles) {
  TempDir dir;
  const std::string real = read_file_bytes(fixtures() / "models/micro/hf/model.safetensors");
  for (size_t cut : {real.size() / 2, real.size() - 1, size_t{8}, size_t{8 + 100}}) {
    const auto p = dir.path() / "cut.safetensors";
    write_file_bytes(p, real.substr(0, cut));
    EXPECT_THROW(read_safetensors(p), CheckpointError) << cut;
  }
  const auto empty = dir.path() / "empty.safetensors";
  write_file_bytes(empty, "");
  EXPECT_THROW(read_safetensors(empty), CheckpointError);
  EXPECT_THROW(read_safetensors(dir.path() / "missing.safetensors"), CheckpointError);
  EXPECT_THROW(read_safetensors(dir.path()), CheckpointError);  // a directory

  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    std::string junk(rng() % 4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (trial % 2 == 0 && junk.size() >= 8) {  // a plausible length in front of the junk
      const uint64_t n = rng() % (junk.size() - 7);
      for (int i = 0; i < 8; ++i) junk[i] = static_cast<char>(n >> (8 * i));
      if (n > 0) junk[8] = '{';
    }
    EXPECT_THROW(
        parse_safetensors(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "junk"),
        CheckpointError);
  }
  // Byte flips in the real header never crash (they either parse or throw CheckpointError).
  for (int trial = 0; trial < 300; ++trial) {
    std::string mutated = real;
    mutated[8 + rng() % 8568] = static_cast<char>(rng());
    try {
      parse_safetensors(reinterpret_cast<const uint8_t*>(mutated.data()), mutated.size(), "m");
    } catch (const CheckpointError&) {
    }
  }
}

}  // namespace
}  // namespace clipshard
