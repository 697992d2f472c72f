#include "shard/row_status.h"

namespace clipshard {

std::string_view row_error_name(RowError code) {
  switch (code) {
    case RowError::kOk:
      return "ok";
    case RowError::kMalformedJson:
      return "malformed_json";
    case RowError::kNotAnObject:
      return "not_an_object";
    case RowError::kMissingKey:
      return "missing_key";
    case RowError::kWrongType:
      return "wrong_type";
    case RowError::kInvalidUtf8:
      return "invalid_utf8";
    case RowError::kEmptyCaption:
      return "empty_caption";
    case RowError::kRemotePath:
      return "remote_path";
    case RowError::kPathOutsideRoot:
      return "path_outside_root";
    case RowError::kFileNotFound:
      return "file_not_found";
    case RowError::kIsDirectory:
      return "is_directory";
    case RowError::kUnreadableFile:
      return "unreadable_file";
    case RowError::kEmptyFile:
      return "empty_file";
    case RowError::kNotAnImage:
      return "not_an_image";
    case RowError::kUnsupportedFormat:
      return "unsupported_format";
    case RowError::kTruncatedImage:
      return "truncated_image";
    case RowError::kCorruptImage:
      return "corrupt_image";
    case RowError::kImageTooLarge:
      return "image_too_large";
    case RowError::kInternal:
      return "internal";
    case RowError::kCorruptTar:
      return "corrupt_tar";
    case RowError::kTruncatedTar:
      return "truncated_tar";
  }
  return "unknown";
}

}  // namespace clipshard
