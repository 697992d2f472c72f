// The end of a run: merge the parts (output.jsonl, errors.jsonl, embeddings.h5) and write
// summary.json (docs/FORMATS.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "driver/run_config.h"
#include "driver/scheduler.h"
#include "shard/run_directory.h"
#include "shard/shard_plan.h"

namespace clipshard {

// Display bins of each operator's score histogram in summary.json and report.html.
inline constexpr int kReportHistogramBins = 50;

// What the summary says about how this run came about, beyond the schedule.
struct RunHistory {
  // state.json's merge_settings before this run (run_config.h merge_settings); null = unknown. When
  // it differs from the config's, the summary says "refiltered": true and "refiltered_from" it.
  nlohmann::json previous_merge_settings;
  // Whether workers were started on shards (each loads the pipeline's models): false for a rerun
  // whose shards were all finished earlier, such as a re-filter.
  bool models_loaded = true;
};

// Merges every finished shard of `plan`, writes summary.json and report.html (driver/report.h);
// returns the summary. `models` is summary.json's "models" (ResolvedModels::summary).
nlohmann::json merge_and_summarize(const RunDirectory& dir, const ShardPlan& plan,
                                   const RunConfig& config, const ScheduleResult& schedule,
                                   const nlohmann::json& models, const RunHistory& history = {});

// One line for logs: "N rows in, M out, E errors, X rows/s".
std::string summary_line(const nlohmann::json& summary);

// One line per pipeline operator, e.g. "ImageClipFilter kept 2 of 10 rows, dropped 8 (threshold
// 0.25); scores p5 0.1, median 0.2, p95 0.3" or "ImageCLIPEvaluator scored 10 rows (1 bad, score
// 0); ...". Tolerates a summary without the per-operator fields (no lines for them).
std::vector<std::string> summary_operator_lines(const nlohmann::json& summary);

}  // namespace clipshard
