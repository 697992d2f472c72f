// Dtype names of the checkpoint formats <-> ATen scalar types. Internal to models/weights.
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

namespace clipshard {

// safetensors dtype string ("F16", "BF16", "F32", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL").
std::optional<c10::ScalarType> safetensors_dtype(const std::string& name);
// Throws CheckpointError for a dtype that safetensors cannot hold.
std::string safetensors_dtype_name(c10::ScalarType type);

// torch.save storage class name without the module ("HalfStorage", "FloatStorage", ...).
std::optional<c10::ScalarType> torch_storage_dtype(const std::string& class_name);
// Throws CheckpointError for a dtype without a storage class.
std::string torch_storage_class(c10::ScalarType type);

}  // namespace clipshard
