// NumPy .npy arrays (format versions 1.0-3.0): little-endian float32 ('<f4') or int64 ('<i8'),
// C order. Used for the micro models' input tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace clipshard {

// Reads the array as a contiguous CPU tensor of its shape (kFloat or kLong). Throws CheckpointError
// (models/weights/state_dict.h) naming the file for another dtype, Fortran order, a malformed
// header or a size that does not match the shape.
at::Tensor read_npy(const std::filesystem::path& file);

}  // namespace clipshard
