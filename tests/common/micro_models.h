// The micro checkpoints of tests/fixtures/models/micro (every format the weights readers accept,
// of one tiny model) and their golden.json (what Python read from each), for the weights tests.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/test_files.h"
#include "common/test_paths.h"
#include "models/weights/state_dict.h"

namespace clipshard::testing {

inline std::filesystem::path micro() { return fixtures() / "models/micro"; }

// models/micro/golden.json, parsed once.
inline const nlohmann::json& golden() {
  static const nlohmann::json g = nlohmann::json::parse(read_file_bytes(micro() / "golden.json"));
  return g;
}

// The tensor names of a state dict, sorted (the form golden.json lists them in).
inline std::set<std::string> keys_of(const StateDict& sd) {
  std::set<std::string> out;
  for (const auto& [k, v] : sd) out.insert(k);
  return out;
}

}  // namespace clipshard::testing
