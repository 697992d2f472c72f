// Writes one finished shard's parts by hand (what a worker would leave behind), for the merge and
// run-directory tests.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/atomic_file.h"
#include "shard/run_directory.h"

namespace clipshard::testing {

// Shard `id` of `dir` with output `rows` (one line each), the similarity sidecar `sims`, the
// error records `errors` (JSONL text) and the done file `done` (written last, as a worker does).
inline void write_finished_shard(const RunDirectory& dir, int64_t id,
                                 const std::vector<std::string>& rows,
                                 const std::vector<float>& sims, const std::string& errors,
                                 const nlohmann::json& done) {
  auto parts = dir.shard_parts(id);
  std::string out;
  for (const auto& r : rows) out += r + "\n";
  write_file_atomically(parts.output, out);
  write_file_atomically(parts.sims, std::string(reinterpret_cast<const char*>(sims.data()),
                                                sims.size() * sizeof(float)));
  write_file_atomically(parts.errors, errors);
  write_file_atomically(parts.done, done.dump());
}

}  // namespace clipshard::testing
