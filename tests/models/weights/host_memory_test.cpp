// Weights memory: whole-file mappings, huge-page buffers, zero-copy tensor views that keep their
// buffer alive, and the readers' ownership contract with and without an owner buffer.
#include "models/weights/host_memory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

using testing::TempDir;

// [lowest data byte, one past the highest] over all tensors of `sd`.
std::pair<uintptr_t, uintptr_t> data_span(const StateDict& sd) {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (const auto& [name, t] : sd) {
    const auto p = reinterpret_cast<uintptr_t>(t.data_ptr());
    lo = std::min(lo, p);
    hi = std::max(hi, p + t.numel() * t.element_size());
  }
  return {lo, hi};
}

StateDict sample_tensors() {
  torch::manual_seed(3);
  StateDict sd;
  sd["big"] = torch::randn({1024, 1100});  // > 2 MiB: a huge-page sized tensor
  sd["half"] = torch::randn({7, 5}).to(torch::kHalf);
  sd["ids"] = torch::arange(10, torch::kLong);
  sd["small"] = torch::randn({3});
  return sd;
}

// `sd` as m.safetensors and m.pt (torch.save zip) in `dir`; returns both paths.
std::vector<std::filesystem::path> write_sample_checkpoints(const std::filesystem::path& dir,
                                                            const StateDict& sd) {
  write_safetensors(dir / "m.safetensors", sd);
  write_torch_zip(dir / "m.pt", sd);
  return {dir / "m.safetensors", dir / "m.pt"};
}

void expect_same_values(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_EQ(b.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(b.at(name), t)) << name;
  }
}

TEST(HostBuffer, LargeBuffersAreHugePageAligned) {
  const auto big = HostBuffer::allocate(5u << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big->data()) % (2u << 20), 0u);
  EXPECT_EQ(big->size(), 5u << 20);
  EXPECT_FALSE(big->is_file_mapping());
  EXPECT_NE(HostBuffer::allocate(100)->data(), nullptr);
  EXPECT_NE(HostBuffer::allocate(0)->data(), nullptr);
}

TEST(HostBuffer, ReadsWholeFilesAndNamesUnreadableOnes) {
  TempDir dir;
  std::string bytes(3'000'001, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 251);
  std::ofstream(dir.path() / "f.bin", std::ios::binary) << bytes;
  const auto buffer = HostBuffer::map_file(dir.path() / "f.bin");
  ASSERT_EQ(buffer->size(), bytes.size());
  EXPECT_TRUE(buffer->is_file_mapping());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buffer->data()), buffer->size()), bytes);

  std::ofstream(dir.path() / "empty.bin", std::ios::binary);
  EXPECT_EQ(HostBuffer::map_file(dir.path() / "empty.bin")->size(), 0u);
  for (const auto& bad : {dir.path() / "missing.bin", dir.path()}) {
    try {
      HostBuffer::map_file(bad);
      FAIL() << "read " << bad;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
    }
  }
}

TEST(HostBuffer, ViewsKeepTheirBufferAlive) {
  at::Tensor view;
  {
    auto buffer = HostBuffer::allocate(4 * sizeof(float));
    auto* f = reinterpret_cast<float*>(buffer->mutable_data());
    for (int i = 0; i < 4; ++i) f[i] = 1.5f * i;
    view = host_tensor_view(buffer, sizeof(float), {3}, at::kFloat);
    EXPECT_EQ(buffer.use_count(), 2);
  }
  EXPECT_TRUE(torch::equal(view, torch::tensor({1.5f, 3.0f, 4.5f})));
}

TEST(HostBuffer, EmptyAndFloatConversion) {
  const auto big = host_empty({1024, 1024}, at::kFloat);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data_ptr()) % (2u << 20), 0u);
  EXPECT_EQ(big.sizes(), (std::vector<int64_t>{1024, 1024}));
  const auto small = host_empty({2, 3}, at::kHalf);
  EXPECT_EQ(small.scalar_type(), at::kHalf);

  const auto f = torch::randn({4, 6});
  EXPECT_EQ(host_contiguous_float(f).data_ptr(), f.data_ptr());  // already fp32 contiguous
  const auto t = host_contiguous_float(f.t());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(torch::equal(t, f.t()));
  const auto h = host_contiguous_float(f.to(at::kHalf));
  EXPECT_EQ(h.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::equal(h, f.to(at::kHalf).to(at::kFloat)));
}

// The file readers hand out views of one buffer holding the file: no copy of the weights.
TEST(HostBuffer, ReadersReturnViewsOfOneFileBuffer) {
  TempDir dir;
  const StateDict sd = sample_tensors();
  for (const auto& file : write_sample_checkpoints(dir.path(), sd)) {
    const StateDict read = read_checkpoint(file);
    expect_same_values(sd, read);
    const auto [lo, hi] = data_span(read);
    EXPECT_LE(hi - lo, std::filesystem::file_size(file)) << file
                                                         << ": tensors are not views of one "
                                                            "buffer holding the file";
  }
}

// Without an owner the parsers copy: the input bytes may go away after the call.
TEST(HostBuffer, ParsersWithoutOwnerCopyOutOfTheInput) {
  TempDir dir;
  const StateDict sd = sample_tensors();
  for (const auto& file : write_sample_checkpoints(dir.path(), sd)) {
    std::vector<uint8_t> bytes(std::filesystem::file_size(file));
    std::ifstream(file, std::ios::binary).read(reinterpret_cast<char*>(bytes.data()), bytes.size());
    const StateDict read = file.extension() == ".pt"
                               ? parse_torch_zip(bytes.data(), bytes.size(), file.string())
                               : parse_safetensors(bytes.data(), bytes.size(), file.string());
    std::fill(bytes.begin(), bytes.end(), 0xAB);
    bytes.clear();
    bytes.shrink_to_fit();
    expect_same_values(sd, read);
  }
}

}  // namespace
}  // namespace clipshard
