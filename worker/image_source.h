// Where a row's image comes from: resolving the manifest's path against the image root or the
// manifest's directory (SPEC §5), refusing remote and escaping paths, and reading the bytes with a
// per-row error for every way a file can be unusable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shard/row_status.h"

namespace clipshard {

struct ImageSourceOptions {
  std::filesystem::path image_root;  // empty: relative paths are relative to the manifest's folder
  bool enforce_image_root = false;   // refuse absolute paths and paths that leave image_root
  int64_t max_file_bytes = int64_t{1} << 30;  // larger files are refused before reading
};

// Resolves `raw` (the manifest value) for a manifest in `manifest_dir`. kRemotePath for URLs,
// kPathOutsideRoot when enforcement is on and the path escapes the root (after resolving "..";
// symlinks inside the root are followed by the OS and not checked), kFileNotFound for "".
RowStatus resolve_image_path(const std::string& raw, const std::filesystem::path& manifest_dir,
                             const ImageSourceOptions& options, std::filesystem::path* resolved);

// Reads a whole image file: kFileNotFound, kIsDirectory, kEmptyFile, kUnreadableFile (permissions,
// I/O error, or larger than max_file_bytes).
RowStatus read_image_bytes(const std::filesystem::path& path, const ImageSourceOptions& options,
                           std::vector<uint8_t>* bytes);

}  // namespace clipshard
