// Paths the tests use: the fixtures copied into the repo and a fresh temporary directory per test.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <cstdlib>

namespace clipshard::testing {

// tests/fixtures: copies of the golden fixtures (tests/fixtures/README.md says where they came from).
inline std::filesystem::path fixtures() { return CLIPSHARD_FIXTURES; }
inline std::filesystem::path source_dir() { return CLIPSHARD_SOURCE_DIR; }
// The built `clipshard` executable (for end-to-end tests).
inline std::filesystem::path clipshard_binary() { return CLIPSHARD_BINARY; }

// A new empty directory under the system temp dir, unique to the running test; removed on
// destruction unless CLIPSHARD_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("clipshard-") + (info ? info->test_suite_name() : "t") + "-" +
                       (info ? info->name() : "x") + "-" + std::to_string(::getpid());
    for (char& c : name)
      if (c == '/') c = '_';
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    if (!std::getenv("CLIPSHARD_KEEP_TEST_DIRS")) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace clipshard::testing
