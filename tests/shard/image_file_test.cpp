// read_image_file, the one reader of image files (shard/image_file.h): every error class, and
// special files (a FIFO without a writer, character devices) that must give a per-row error at
// once instead of blocking the decode thread until the worker timeout aborts the job.
#include "shard/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>

#include "common/test_paths.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(ImageFile, ReadsARegularFileWhole) {
  testing::TempDir tmp;
  const std::string content = std::string("\xFF\xD8\xFF", 3) + std::string(100000, 'x');
  write(tmp.path() / "a.jpg", content);
  std::vector<uint8_t> bytes = {1, 2, 3};  // replaced, not appended to
  const RowStatus status = read_image_file(tmp.path() / "a.jpg", &bytes);
  ASSERT_TRUE(status.ok()) << status.message;
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), content);
}

TEST(ImageFile, EveryErrorClass) {
  testing::TempDir tmp;
  write(tmp.path() / "empty.jpg", "");
  write(tmp.path() / "big.jpg", std::string(2000, 'x'));
  fs::create_directories(tmp.path() / "folder.jpg");
  const std::vector<std::tuple<fs::path, int64_t, RowError>> cases = {
      {tmp.path() / "missing.jpg", 1 << 20, RowError::kFileNotFound},
      {tmp.path() / "no_dir" / "a.jpg", 1 << 20, RowError::kFileNotFound},
      {tmp.path() / "empty.jpg" / "a.jpg", 1 << 20, RowError::kFileNotFound},  // ENOTDIR
      {tmp.path() / "folder.jpg", 1 << 20, RowError::kIsDirectory},
      {tmp.path() / "empty.jpg", 1 << 20, RowError::kEmptyFile},
      {tmp.path() / "big.jpg", 1999, RowError::kUnreadableFile},
  };
  for (const auto& [path, limit, code] : cases) {
    std::vector<uint8_t> bytes = {1};
    const RowStatus status = read_image_file(path, &bytes, limit);
    EXPECT_EQ(status.code, code) << path << ": " << status.message;
    EXPECT_NE(status.message.find(path.string()), std::string::npos) << status.message;
    EXPECT_TRUE(bytes.empty()) << path;
  }
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(
      read_image_file(tmp.path() / "big.jpg", &bytes, 2000).ok());  // the limit is inclusive
}

// Runs read_image_file on `path` on another thread and gives it `seconds`; a read still blocked
// then is a failure, and `unblock` is called so that the thread can end.
RowStatus read_with_deadline(const fs::path& path, double seconds,
                             const std::function<void()>& unblock) {
  auto result = std::async(std::launch::async, [path] {
    std::vector<uint8_t> bytes;
    return read_image_file(path, &bytes);
  });
  if (result.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) {
    ADD_FAILURE() << "read_image_file(" << path << ") still blocked after " << seconds << " s";
    unblock();
  }
  return result.get();
}

TEST(ImageFile, AFifoWithoutWriterIsARowErrorNotAHang) {
  testing::TempDir tmp;
  const fs::path fifo = tmp.path() / "pipe.jpg";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  const RowStatus status = read_with_deadline(fifo, 10.0, [&] {
    // A writer releases a reader blocked in open(); closing it gives the reader end of file.
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  EXPECT_EQ(status.code, RowError::kUnreadableFile) << status.message;
  EXPECT_NE(status.message.find("not a regular file"), std::string::npos) << status.message;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

TEST(ImageFile, DeviceFilesAreRowErrors) {
  // /dev/zero would fill memory and /dev/null reads as empty: neither is read at all.
  for (const char* device : {"/dev/zero", "/dev/null", "/dev/urandom"}) {
    if (!fs::exists(device)) continue;
    const RowStatus status = read_with_deadline(device, 10.0, [] {});
    EXPECT_EQ(status.code, RowError::kUnreadableFile) << device << ": " << status.message;
    EXPECT_NE(status.message.find("not a regular file"), std::string::npos) << status.message;
  }
}

TEST(ImageFile, RemotePathsFollowTheUriSchemeRule) {
  for (const char* path : {"http://example.com/a.jpg", "https://example.com/a.jpg",
                           "s3://bucket/key.png", "gs://bucket/key.png", "hf://datasets/x.jpg",
                           "ftp://host/x.jpg", "git+ssh://host/x.jpg", "S3://bucket/k"}) {
    EXPECT_TRUE(is_remote_path(path)) << path;
  }
  // A scheme starts with a letter and holds only letters, digits, '+', '-', '.'.
  for (const char* path : {"images/a.jpg", "/abs/a.jpg", "dir/x://y.jpg", "://x", "C:/a.jpg",
                           "1x://y.jpg", "a_b://c.jpg", "-a://c.jpg", ""}) {
    EXPECT_FALSE(is_remote_path(path)) << path;
  }
}

}  // namespace
}  // namespace clipshard
