// Merging finished shards into the run directory's outputs, in plan order (= input order).
// Streaming: memory does not grow with the number of rows.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "shard/run_directory.h"

namespace clipshard {

// One filter step of the pipeline, in pipeline order. Its similarities are column `index` of the
// shards' sims files. A row is kept by the step when sim >= threshold, or, with top_fraction, when
// its sim is >= the k-th best sim among the rows still alive before this step, with
// k = ceil(top_fraction * alive) (ties at the cutoff are all kept; see docs/FORMATS.md).
struct FilterRule {
  std::string name;  // operator name, for the summary
  double threshold = 0.0;
  std::optional<double> top_fraction;  // in (0, 1]; overrides threshold when set
};

// An extra output with the rows as they stand after an earlier pipeline step (DataFlow-MM's
// per-step files): the rows kept by the first `filters_applied` filters, without the keys the later
// evaluators add (`keys_to_remove`).
struct StepOutput {
  std::filesystem::path path;
  size_t filters_applied = 0;
  std::vector<std::string> keys_to_remove;
};

struct FilterOutcome {
  std::string name;
  int64_t rows_in = 0;
  int64_t kept = 0;
  int64_t dropped = 0;
  double effective_threshold = 0.0;  // the cutoff used (computed for top_fraction)
};

struct MergeResult {
  int64_t rows_out = 0;
  int64_t error_records = 0;
  std::vector<FilterOutcome> filters;
  nlohmann::json shard_totals;  // sum of the numeric fields of every shard's done file
  nlohmann::json per_rank;      // rank -> sums of that rank's shards
};

// Writes dir.output() and dir.errors() (atomically) from shards [0, shard_count), all of which
// must be done. Throws std::runtime_error on a missing or inconsistent part.
MergeResult merge_shards(const RunDirectory& dir, int64_t shard_count,
                         const std::vector<FilterRule>& filters,
                         const std::vector<StepOutput>& steps = {});

// Adds the numbers of `from` into `into`, recursing into objects (missing keys are created).
void add_counters(nlohmann::json& into, const nlohmann::json& from);

}  // namespace clipshard
