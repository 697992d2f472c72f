// The end of a run: merge the parts (output.jsonl, errors.jsonl, embeddings.h5) and write
// summary.json (docs/FORMATS.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "driver/run_config.h"
#include "driver/scheduler.h"
#include "shard/run_directory.h"
#include "shard/shard_plan.h"

namespace clipshard {

// Merges every finished shard of `plan` and writes summary.json; returns the summary.
nlohmann::json merge_and_summarize(const RunDirectory& dir, const ShardPlan& plan,
                                   const RunConfig& config, const ScheduleResult& schedule);

// One line for logs: "N rows in, M out, E errors, X rows/s".
std::string summary_line(const nlohmann::json& summary);

}  // namespace clipshard
