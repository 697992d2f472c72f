#include "driver/summary.h"

#include <chrono>
#include <cstdio>

#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/merge.h"

namespace clipshard {

nlohmann::json merge_and_summarize(const RunDirectory& dir, const ShardPlan& plan,
                                   const RunConfig& config, const ScheduleResult& schedule) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<FilterRule> filters;
  for (const auto& op : config.pipeline)
    if (op.is_filter()) filters.push_back({operator_name(op.kind), op.threshold, op.top_fraction});
  const int64_t shard_count = static_cast<int64_t>(plan.shards.size());
  std::vector<StepOutput> steps;
  if (config.has_step_files) {
    // Step N (1-based) = the rows after operator N, as DataFlow-MM's FileStorage writes them.
    size_t filters_so_far = 0;
    for (size_t n = 0; n < config.pipeline.size(); ++n) {
      if (config.pipeline[n].is_filter()) ++filters_so_far;
      StepOutput step;
      step.path = std::filesystem::path(config.step_files.cache_path) /
                  (config.step_files.file_name_prefix + "_step" + std::to_string(n + 1) + ".jsonl");
      step.filters_applied = filters_so_far;
      for (size_t later = n + 1; later < config.pipeline.size(); ++later)
        if (!config.pipeline[later].is_filter())
          step.keys_to_remove.push_back(config.pipeline[later].output_key);
      steps.push_back(step);
    }
  }
  const MergeResult merged = merge_shards(dir, shard_count, filters, steps);

  int64_t embedding_parts = 0;
  if (config.embedding_cache.enabled) {
    std::vector<std::filesystem::path> parts;
    for (int64_t s = 0; s < shard_count; ++s) {
      const auto p = dir.shard_parts(s).embeddings;
      if (std::filesystem::exists(p)) parts.push_back(p);
    }
    embedding_parts = static_cast<int64_t>(parts.size());
    if (!parts.empty()) merge_embedding_caches(parts, dir.embeddings());
  }
  const double merge_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto& totals = merged.shard_totals;
  nlohmann::json operators = nlohmann::json::array();
  size_t filter_index = 0;
  for (const auto& op : config.pipeline) {
    nlohmann::json o = to_fingerprint_json(op);
    if (op.is_filter()) {
      const FilterOutcome& f = merged.filters.at(filter_index++);
      o["rows_in"] = f.rows_in;
      o["kept"] = f.kept;
      o["dropped"] = f.dropped;
      o["effective_threshold"] = f.effective_threshold;
    }
    operators.push_back(o);
  }
  const int64_t lines_done = schedule.lines_finished;
  nlohmann::json summary = {
      {"format", "clipshard-summary"},
      {"version", 1},
      {"status", "finished"},
      {"run_dir", dir.root().string()},
      {"inputs", manifest_fingerprints(plan)},
      {"lines", plan.total_lines()},
      {"rows_in", totals.value("rows", int64_t{0})},
      {"rows_out", merged.rows_out},
      {"blank_lines", totals.value("blank_lines", int64_t{0})},
      {"error_lines", totals.value("error_lines", int64_t{0})},
      {"error_rows", totals.value("error_rows", int64_t{0})},
      {"error_records", merged.error_records},
      {"errors_by_reason", totals.value("errors", nlohmann::json::object())},
      {"captions_truncated", totals.value("captions_truncated", int64_t{0})},
      {"operators", operators},
      {"embeddings", totals.value("embeddings", nlohmann::json::object())},
      {"embedding_cache",
       {{"enabled", config.embedding_cache.enabled},
        {"lossy_fp16", config.embedding_cache.lossy_fp16},
        {"parts_merged", embedding_parts}}},
      {"shards",
       {{"total", shard_count},
        {"finished_this_run", schedule.shards_finished},
        {"finished_earlier", shard_count - schedule.shards_finished},
        {"lines_per_shard", plan.lines_per_shard}}},
      {"timing",
       {{"this_run_seconds", schedule.seconds},
        {"lines_per_second_this_run", schedule.seconds > 0 ? lines_done / schedule.seconds : 0.0},
        {"merge_seconds", merge_seconds},
        {"worker_seconds", totals.value("seconds", nlohmann::json::object())}}},
      {"ranks", merged.per_rank},
  };
  write_file_atomically(dir.summary(), summary.dump(2) + "\n");
  return summary;
}

std::string summary_line(const nlohmann::json& s) {
  char line[256];
  std::snprintf(line, sizeof line,
                "%lld rows in, %lld rows out, %lld error records, %.1f lines/s this run (%s)",
                static_cast<long long>(s.value("rows_in", int64_t{0})),
                static_cast<long long>(s.value("rows_out", int64_t{0})),
                static_cast<long long>(s.value("error_records", int64_t{0})),
                s["timing"].value("lines_per_second_this_run", 0.0),
                (s.value("run_dir", std::string()) + "/output.jsonl").c_str());
  return line;
}

}  // namespace clipshard
