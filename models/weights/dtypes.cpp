#include "models/weights/dtypes.h"

#include <utility>

#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

using c10::ScalarType;

const std::pair<const char*, ScalarType> kSafetensorsNames[] = {
    {"F16", ScalarType::Half},   {"BF16", ScalarType::BFloat16}, {"F32", ScalarType::Float},
    {"F64", ScalarType::Double}, {"I64", ScalarType::Long},      {"I32", ScalarType::Int},
    {"I16", ScalarType::Short},  {"I8", ScalarType::Char},       {"U8", ScalarType::Byte},
    {"BOOL", ScalarType::Bool},
};

const std::pair<const char*, ScalarType> kStorageNames[] = {
    {"HalfStorage", ScalarType::Half},   {"BFloat16Storage", ScalarType::BFloat16},
    {"FloatStorage", ScalarType::Float}, {"DoubleStorage", ScalarType::Double},
    {"LongStorage", ScalarType::Long},   {"IntStorage", ScalarType::Int},
    {"ShortStorage", ScalarType::Short}, {"CharStorage", ScalarType::Char},
    {"ByteStorage", ScalarType::Byte},   {"BoolStorage", ScalarType::Bool},
};

}  // namespace

std::optional<ScalarType> safetensors_dtype(const std::string& name) {
  for (const auto& [n, t] : kSafetensorsNames)
    if (name == n) return t;
  return std::nullopt;
}

std::string safetensors_dtype_name(ScalarType type) {
  for (const auto& [n, t] : kSafetensorsNames)
    if (type == t) return n;
  throw CheckpointError(std::string("safetensors cannot store dtype ") + c10::toString(type));
}

std::optional<ScalarType> torch_storage_dtype(const std::string& class_name) {
  for (const auto& [n, t] : kStorageNames)
    if (class_name == n) return t;
  return std::nullopt;
}

std::string torch_storage_class(ScalarType type) {
  for (const auto& [n, t] : kStorageNames)
    if (type == t) return n;
  throw CheckpointError(std::string("torch.save storage of dtype ") + c10::toString(type) +
                        " is not supported by write_torch_zip");
}

}  // namespace clipshard
