// The .npy writer (header layout numpy reads, rows appended then counted in place, incomplete
// files removed) and the row keys part (round trip, damaged files are errors naming the file).
// numpy itself reads the writer's files in tests/driver/export_e2e_test.sh.
#include "shard/npy_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "shard/atomic_file.h"
#include "shard/row_keys.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("clipshard-npy-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "parts");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST(NpyHeader, IsAlignedAndKeepsItsLengthAsRowsGrow) {
  for (auto dtype : {NpyDType::kFloat32, NpyDType::kFloat16}) {
    const std::string h0 = npy_header(dtype, 0, 768);
    const std::string big = npy_header(dtype, 999999999999999, 768);
    EXPECT_EQ(h0.size() % 64, 0u);
    EXPECT_EQ(h0.size(), big.size());
    EXPECT_EQ(h0.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t dict_len = static_cast<unsigned char>(h0[8]) | (h0[9] << 8);
    EXPECT_EQ(dict_len + 10, h0.size());
    EXPECT_EQ(h0.back(), '\n');
    EXPECT_NE(h0.find(dtype == NpyDType::kFloat16 ? "'<f2'" : "'<f4'"), std::string::npos);
    EXPECT_NE(h0.find("'shape': (0, 768), "), std::string::npos);
    EXPECT_NE(big.find("'shape': (999999999999999, 768), "), std::string::npos);
  }
}

TEST_F(TempDirTest, WritesRowsAndTheirCount) {
  const fs::path path = dir_ / "a.npy";
  const float rows[2][3] = {{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}};
  {
    NpyWriter w(path, 3, NpyDType::kFloat32);
    w.append(rows[0], 1);
    w.append(rows[1], 1);
    w.append(rows, 2);
    EXPECT_EQ(w.rows(), 4);
    w.finish();
  }
  const std::string bytes = read_file(path);
  const std::string header = npy_header(NpyDType::kFloat32, 4, 3);
  ASSERT_EQ(bytes.size(), header.size() + 4 * 3 * sizeof(float));
  EXPECT_EQ(bytes.substr(0, header.size()), header);
  float back[12];
  std::memcpy(back, bytes.data() + header.size(), sizeof back);
  EXPECT_EQ(back[0], 1.f);
  EXPECT_EQ(back[5], 6.f);
  EXPECT_EQ(back[11], 6.f);
}

TEST_F(TempDirTest, Float16RowsAreTwoBytesAValue) {
  const fs::path path = dir_ / "h.npy";
  const uint16_t halves[4] = {0x3C00, 0x4000, 0xBC00, 0x0000};  // 1, 2, -1, 0
  NpyWriter w(path, 2, NpyDType::kFloat16);
  w.append(halves, 2);
  w.finish();
  EXPECT_EQ(fs::file_size(path), npy_header(NpyDType::kFloat16, 2, 2).size() + 8);
}

TEST_F(TempDirTest, AnUnfinishedFileIsRemovedAndBadArgumentsThrow) {
  const fs::path path = dir_ / "gone.npy";
  {
    NpyWriter w(path, 4, NpyDType::kFloat32);
    const float row[4] = {0, 0, 0, 0};
    w.append(row, 1);
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_THROW(NpyWriter(dir_ / "x.npy", 0, NpyDType::kFloat32), std::invalid_argument);
  try {
    NpyWriter(dir_ / "no" / "such" / "dir.npy", 4, NpyDType::kFloat32);
    FAIL() << "no error for a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dir.npy"), std::string::npos) << e.what();
  }
}

TEST_F(TempDirTest, RowKeysRoundTrip) {
  const fs::path path = row_keys_path(dir_, 7);
  EXPECT_EQ(path.filename(), "shard-00000007.rowkeys.bin");
  const std::vector<RowKeyTables> ops = {{"m1", "hf224", "m1", "hf77"},
                                         {"m2", "tv336", "m2t", "longclip248"}};
  {
    RowKeysWriter w(path, ops);
    w.add_row({{1, 2, 3, 4}, {0, 0, 0, 0}});
    w.add_row({{5, 6, 7, 8}, {9, 10, 11, ~uint64_t{0}}});
    EXPECT_THROW(w.add_row({{1, 2, 3, 4}}), std::invalid_argument);
    w.commit();
  }
  RowKeysReader r(path);
  ASSERT_EQ(r.operators().size(), 2u);
  EXPECT_EQ(r.operators()[1].image_model_id, "m2");
  EXPECT_EQ(r.operators()[1].text_model_id, "m2t");
  EXPECT_EQ(r.operators()[1].image_pipeline, "tv336");
  EXPECT_EQ(r.operators()[1].text_pipeline, "longclip248");
  std::vector<RowKeys> keys;
  ASSERT_TRUE(r.next(&keys));
  EXPECT_TRUE(has_embeddings(keys[0]));
  EXPECT_FALSE(has_embeddings(keys[1]));
  ASSERT_TRUE(r.next(&keys));
  EXPECT_EQ(keys[1][3], ~uint64_t{0});
  EXPECT_EQ(keys[0][0], 5u);
  EXPECT_FALSE(r.next(&keys));
}

TEST_F(TempDirTest, DamagedRowKeysAreErrorsNamingTheFile) {
  const fs::path path = row_keys_path(dir_, 0);
  {
    RowKeysWriter w(path, {{"m", "hf224", "m", "hf77"}});
    w.add_row({{1, 2, 3, 4}});
    w.commit();
  }
  // Cut inside the record.
  fs::resize_file(path, fs::file_size(path) - 5);
  {
    RowKeysReader r(path);
    std::vector<RowKeys> keys;
    try {
      r.next(&keys);
      FAIL() << "no error for a truncated record";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
  write_file_atomically(path, "not a row keys part at all");
  EXPECT_THROW(RowKeysReader{path}, std::runtime_error);
  EXPECT_THROW(RowKeysReader{dir_ / "missing.bin"}, std::runtime_error);
}

}  // namespace
}  // namespace clipshard
