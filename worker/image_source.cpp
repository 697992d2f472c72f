#include "worker/image_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "shard/tar_reader.h"

namespace clipshard {

namespace {

bool looks_remote(const std::string& raw) {
  const auto colon = raw.find("://");
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    const char c = raw[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

bool is_within(const std::filesystem::path& root, const std::filesystem::path& p) {
  auto r = root.begin();
  auto q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // trailing separator
    if (q == p.end() || *q != *r) return false;
  }
  return true;
}

}  // namespace

std::string ImageRef::identity() const {
  return in_tar() ? path.string() + '\0' + std::to_string(offset) : path.string();
}

RowStatus read_image_bytes(const ImageRef& ref, const ImageSourceOptions& options,
                           std::vector<uint8_t>* bytes) {
  if (!ref.in_tar()) return read_image_bytes(ref.path, options, bytes);
  return read_tar_member(ref.path, ref.offset, ref.size, options.max_file_bytes, bytes);
}

std::string pick_key_alternative(const Json& row, const std::string& key) {
  if (row.contains(key) || key.find(';') == std::string::npos) return key;
  size_t start = 0;
  for (;;) {
    const size_t semicolon = key.find(';', start);
    const std::string alternative = key.substr(start, semicolon - start);
    if (row.contains(alternative)) return alternative;
    if (semicolon == std::string::npos) return key;
    start = semicolon + 1;
  }
}

RowStatus find_tar_image(const Json& row, const std::string& key, const std::filesystem::path& tar,
                         const std::vector<std::string>& skipped, ImageRef* ref) {
  size_t start = 0;
  std::string tried;
  for (;;) {
    const size_t semicolon = key.find(';', start);
    const std::string alternative = key.substr(start, semicolon - start);
    const auto it = row.find(alternative);
    // Only a member reference counts: a same-named field of the sample's .json is no image.
    if (it != row.end() && it->is_object() && it->contains("offset") && it->contains("size")) {
      ref->path = tar;
      ref->offset = it->at("offset").get<int64_t>();
      ref->size = it->at("size").get<int64_t>();
      return RowStatus::Ok();
    }
    tried += (tried.empty() ? "" : ", ") + alternative;
    if (semicolon == std::string::npos) break;
    start = semicolon + 1;
  }
  std::string message = "sample has no image member " + tried;
  if (!skipped.empty()) {
    message += "; skipped non-file members:";
    for (const auto& s : skipped) message += " " + s;
  }
  return RowStatus::Error(RowError::kMissingKey, message);
}

RowStatus resolve_image_path(const std::string& raw, const std::filesystem::path& manifest_dir,
                             const ImageSourceOptions& options, std::filesystem::path* resolved) {
  if (raw.empty()) return RowStatus::Error(RowError::kFileNotFound, "empty image path");
  if (looks_remote(raw))
    return RowStatus::Error(RowError::kRemotePath,
                            "remote paths are not supported (" + raw.substr(0, raw.find("://")) +
                                "://); download the images and point the manifest at local files");
  const std::filesystem::path p(raw);
  const std::filesystem::path base = options.image_root.empty() ? manifest_dir : options.image_root;
  if (options.enforce_image_root) {
    if (p.is_absolute())
      return RowStatus::Error(RowError::kPathOutsideRoot,
                              "absolute path " + raw + " refused: image_root is enforced");
    const auto root = std::filesystem::absolute(base).lexically_normal();
    const auto full = (root / p).lexically_normal();
    if (!is_within(root, full))
      return RowStatus::Error(RowError::kPathOutsideRoot,
                              "path " + raw + " leaves the image root " + root.string());
    *resolved = full;
    return RowStatus::Ok();
  }
  *resolved = p.is_absolute() ? p : (base / p).lexically_normal();
  return RowStatus::Ok();
}

RowStatus read_image_bytes(const std::filesystem::path& path, const ImageSourceOptions& options,
                           std::vector<uint8_t>* bytes) {
  bytes->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return RowStatus::Error(RowError::kFileNotFound, "no such file: " + path.string());
    return RowStatus::Error(RowError::kUnreadableFile,
                            "cannot open " + path.string() + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return RowStatus::Error(RowError::kUnreadableFile, "cannot stat " + path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return RowStatus::Error(RowError::kIsDirectory, path.string() + " is a directory");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return RowStatus::Error(RowError::kUnreadableFile, path.string() + " is not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    return RowStatus::Error(RowError::kEmptyFile, path.string() + " is empty (0 bytes)");
  }
  if (st.st_size > options.max_file_bytes) {
    ::close(fd);
    return RowStatus::Error(RowError::kUnreadableFile, path.string() +
                                                           " is larger than max_file_bytes (" +
                                                           std::to_string(st.st_size) + " bytes)");
  }
  bytes->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes->size()) {
    const ssize_t n = ::read(fd, bytes->data() + done, bytes->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      bytes->clear();
      return RowStatus::Error(RowError::kUnreadableFile,
                              "read error on " + path.string() + ": " +
                                  (n == 0 ? "file shrank while reading" : std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return RowStatus::Ok();
}

}  // namespace clipshard
