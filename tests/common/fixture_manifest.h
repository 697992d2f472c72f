// A JSONL manifest over the fixture images for end-to-end tests of a run.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/test_paths.h"

namespace clipshard::testing {

// Writes `rows` lines to dir/m.jsonl and returns its path. Row i is {"image": the fixture image
// files[i % files.size()] (a name that does not exist there makes a missing-file row), "caption":
// captions[i % captions.size()], "i": i}, so rows repeat images and captions in a fixed pattern.
inline std::filesystem::path write_fixture_manifest(const std::filesystem::path& dir, int rows,
                                                    const std::vector<std::string>& files,
                                                    const std::vector<std::string>& captions) {
  const auto images = fixtures() / "images";
  const auto path = dir / "m.jsonl";
  std::ofstream out(path);
  for (int i = 0; i < rows; ++i)
    out << nlohmann::json{{"image", (images / files[i % files.size()]).string()},
                          {"caption", captions[i % captions.size()]},
                          {"i", i}}
               .dump()
        << "\n";
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return path;
}

}  // namespace clipshard::testing
