// Stands in for packed_linear.cpp in builds without CLIPSHARD_ONEDNN (a LibTorch with its own
// oneDNN, or no libdnnl-dev): nothing is packed, clip_model.cpp keeps its per-call path.
#include "models/clip/packed_linear.h"

namespace clipshard {

bool packed_linear_available() { return false; }

std::shared_ptr<const PackedLinear> PackedLinear::pack(const at::Tensor&) { return nullptr; }

}  // namespace clipshard
