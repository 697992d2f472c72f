// Merging finished shards into the run directory's outputs, in plan order (= input order).
// Streaming: memory does not grow with the number of rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shard/run_directory.h"
#include "shard/shard_stats.h"

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

// The score distribution of one pipeline operator over the rows that reached it (for a filter:
// the rows its earlier filters kept; for an evaluator after a filter likewise), in constant
// memory: a fine histogram of kFineBins equal bins over [0, 1] plus exact count/min/max/mean.
// Quantiles come from the fine histogram: each is the centre of the bin holding the
// nearest-rank sample (rank ceil(q * count)), clamped to [min, max], so it is within
// 1 / (2 * kFineBins) ~ 7.6e-6 of the exact nearest-rank value (rank 1 and rank count give min and
// max exactly). Bad rows (scored 0 because of an
// error) are counted in `bad_rows` and are not part of the distribution.
struct ScoreStats {
  static constexpr int kFineBins = 1 << 16;
  int64_t count = 0;     // scores in the distribution
  int64_t bad_rows = 0;  // rows that reached the operator with an error
  double sum = 0.0;
  double min = 0.0, max = 0.0;  // meaningful when count > 0
  std::vector<int64_t> fine = std::vector<int64_t>(kFineBins, 0);

  // Adds one score; values outside [0, 1] are clamped into the edge bins (min/max stay exact).
  void add(double score);
  // q in [0, 1]; NaN when count == 0.
  double quantile(double q) const;
  // {"count", "bad_rows", "min", "max", "mean", "quantiles": {"p1": ..., "p99": ...},
  //  "histogram": {"lo", "hi", "counts": [display_bins]}}. The histogram spans [lo, hi]: the
  // range of the scores widened to include `mark` (a threshold or cutoff, if finite) and
  // snapped to fine bins, so every count is exact; a bin starts at the mark's fine bin (so one
  // more bin than display_bins may be needed). Empty distributions give count 0 and no
  // quantiles or histogram.
  nlohmann::json to_json(int display_bins = 50, double mark = std::nan("")) const;
};

// Where one pipeline operator's scores are, for ScoreStats: a filter's in its sims column
// (a bad row has sim -0.0, see worker/operator_spec.h); an evaluator's in each output
// row under `output_key` (a bad row has exactly 0.0, which a real score reaches only for
// cos = -1).
struct ScoredStep {
  bool is_filter = false;
  size_t filter_index = 0;  // filter: its sims column; evaluator: the filters before it
  std::string output_key;   // evaluators
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
  ShardStats shard_totals;             // sum of every shard's statistics (its done file)
  std::map<int, ShardStats> per_rank;  // rank -> sums of that rank's shards
  std::vector<ScoreStats> scores;  // one per ScoredStep given to merge_shards
  // reason -> up to kErrorExamples error records (first in input order), for the report.
  nlohmann::json error_examples;
  static constexpr int kErrorExamples = 3;
};

// Writes dir.output() and dir.errors() (atomically) from shards [0, shard_count), all of which
// must be done. Throws std::runtime_error on a missing or inconsistent part.
MergeResult merge_shards(const RunDirectory& dir, int64_t shard_count,
                         const std::vector<FilterRule>& filters,
                         const std::vector<StepOutput>& steps = {},
                         const std::vector<ScoredStep>& scored = {});

// The number under top-level `key` of the JSON object `line` (nullopt when the line is not an
// object, the key is absent or its value is not a number), without parsing the whole row. Agrees
// with nlohmann::json (keys compared after unescaping, the last duplicate wins).
std::optional<double> top_level_number(std::string_view line, const std::string& key);

}  // namespace clipshard
