// Where a row's image comes from: a loose file (the manifest's path resolved against the image root
// or the manifest's directory, refusing remote and escaping paths) or a member of a WebDataset tar
// (read in place at its offset), and reading the bytes with a per-row error for every way an image
// can be unusable. Both kinds go through read_image_bytes, so they fail with the same codes; a file
// is read by shard/image_file.h's read_image_file, the one reader of image files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shard/config_fields.h"
#include "shard/manifest_row.h"
#include "shard/row_status.h"

namespace clipshard {

struct ImageSourceOptions {
  std::filesystem::path image_root;  // empty: relative paths are relative to the manifest's folder
  bool enforce_image_root = false;   // refuse absolute paths and paths that leave image_root
  int64_t max_file_bytes = int64_t{1} << 30;  // larger files are refused before reading
};

// The config keys of ImageSourceOptions (docs/CONFIG.md, at the top level of a run config):
// `image_root` (null = "") and `enforce_image_root`, both part of the result fingerprint (they
// change which file a row reads). max_file_bytes is not a setting.
const ConfigFields<ImageSourceOptions>& image_source_config_fields();
// Reads an object holding only those keys (read_config_object: others are errors naming them).
void from_json(const nlohmann::json& object, ImageSourceOptions& options);

// A row's image: a file (`offset` < 0) or `size` bytes at `offset` inside the tar `path`.
struct ImageRef {
  std::filesystem::path path;
  int64_t offset = -1;
  int64_t size = 0;
  bool in_tar() const { return offset >= 0; }
  // Equal for two references to the same bytes: the shard decodes each image once.
  std::string identity() const;
};

// Resolves `raw` (the manifest value) for a manifest in `manifest_dir`. kRemotePath for URLs
// (shard/image_file.h: is_remote_path), kPathOutsideRoot when enforcement is on and the path
// escapes the root (after resolving ".."; symlinks inside the root are followed by the OS and not
// checked), kFileNotFound for "".
RowStatus resolve_image_path(const std::string& raw, const std::filesystem::path& manifest_dir,
                             const ImageSourceOptions& options, std::filesystem::path* resolved);

// Reads a file (read_image_file: kFileNotFound, kIsDirectory, kEmptyFile, kUnreadableFile for
// permissions, I/O errors, what is not a regular file and files over max_file_bytes) or a tar
// member, which fails like a file (kEmptyFile for 0 bytes, kUnreadableFile over max_file_bytes),
// plus kTruncatedTar when the tar ends inside it.
RowStatus read_image_bytes(const ImageRef& ref, const ImageSourceOptions& options,
                           std::vector<uint8_t>* bytes);

// The key of `row` that `key` names: `key` itself when the row has it, else the first of its
// ';'-separated alternatives the row has ("jpg;png;webp"), else `key` (so that the row's
// missing_key error names what was asked for).
std::string pick_key_alternative(const Json& row, const std::string& key);

// The image of a tar row (shard/row_source.h) under `key`, which may list alternatives the way
// WebDataset does ("jpg;png;webp": the first the sample has). kMissingKey naming the sample's
// skipped non-file members (`skipped`, "jpg (symlink)") when it has none of them.
RowStatus find_tar_image(const Json& row, const std::string& key, const std::filesystem::path& tar,
                         const std::vector<std::string>& skipped, ImageRef* ref);

}  // namespace clipshard
