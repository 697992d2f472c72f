// The one reader of image files: every image that comes from a loose file (the worker's decode
// pool, decode_image_file in models/) is read here, so a path fails the same way whoever reads it.
// No Torch, no codecs: bytes only; decoding is models/image/image_decoder.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string_view>
#include <vector>

#include "shard/row_status.h"

namespace clipshard {

// True for "scheme://..." paths (http, https, s3, gs, hf, ...), with a scheme as RFC 3986 spells
// it (a letter, then letters, digits, '+', '-', '.'): such paths are never opened.
bool is_remote_path(std::string_view path);

// Reads the whole regular file `path` into *bytes (cleared first, and left empty on error; its
// capacity is reused, so a caller may pass one buffer per thread). Errors, all per-row:
//   kFileNotFound   the path or one of its folders does not exist
//   kIsDirectory    a directory
//   kUnreadableFile cannot be opened (permissions, ...), not a regular file (a FIFO, a socket, a
//                   device such as /dev/zero), larger than `max_bytes`, an I/O error, or the file
//                   shrank while it was read
//   kEmptyFile      0 bytes
// Never blocks on what is not a regular file: the open is non-blocking (a FIFO without a writer
// would otherwise wait forever) and nothing but a regular file is read.
RowStatus read_image_file(const std::filesystem::path& path, std::vector<uint8_t>* bytes,
                          int64_t max_bytes = std::numeric_limits<int64_t>::max());

}  // namespace clipshard
