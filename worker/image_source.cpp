#include "worker/image_source.h"

#include "shard/image_file.h"
#include "shard/tar_reader.h"

namespace clipshard {

namespace {

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
  if (!ref.in_tar()) return read_image_file(ref.path, bytes, options.max_file_bytes);
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
  if (is_remote_path(raw))
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

const ConfigFields<ImageSourceOptions>& image_source_config_fields() {
  static const ConfigFields<ImageSourceOptions> fields = {
      config_field("image_root", &ImageSourceOptions::image_root, config_string()).in_fingerprint(),
      config_field("enforce_image_root", &ImageSourceOptions::enforce_image_root, config_bool())
          .in_fingerprint(),
  };
  return fields;
}

void from_json(const nlohmann::json& object, ImageSourceOptions& options) {
  read_config_object(image_source_config_fields(), object, "", &options);
}

}  // namespace clipshard
