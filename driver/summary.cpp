#include "driver/summary.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "driver/report.h"
#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/keep_rule.h"
#include "shard/merge.h"

namespace clipshard {

namespace {

nlohmann::json ranks_this_run(const ScheduleResult& schedule) {
  nlohmann::json ranks = nlohmann::json::object();
  for (const auto& [rank, a] : schedule.ranks)
    ranks[std::to_string(rank)] = {
        {"shards", a.shards},
        {"lines", a.lines},
        {"busy_seconds", a.busy_seconds},
        {"lines_per_second", a.busy_seconds > 0 ? a.lines / a.busy_seconds : 0.0}};
  return ranks;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

nlohmann::json merge_and_summarize(const RunDirectory& dir, const ShardPlan& plan,
                                   const RunConfig& config, const ScheduleResult& schedule,
                                   const nlohmann::json& models, const RunHistory& history) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<FilterRule> filters;
  std::vector<ScoredStep> scored;  // one per pipeline operator
  for (const auto& op : config.pipeline) {
    scored.push_back({op.is_filter(), filters.size(), op.is_filter() ? "" : op.output_key});
    if (op.is_filter()) filters.push_back({operator_name(op.kind), op.threshold, op.top_fraction});
  }
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
  const MergeResult merged = merge_shards(dir, shard_count, filters, steps, scored);

  int64_t embedding_parts = 0;
  if (config.processing.cache.write) {
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

  const ShardStats& totals = merged.shard_totals;
  const nlohmann::json totals_json = shard_stats_to_json(totals);
  nlohmann::json ranks = nlohmann::json::object();
  for (const auto& [rank, stats] : merged.per_rank)
    ranks[std::to_string(rank)] = shard_stats_to_json(stats);
  nlohmann::json operators = nlohmann::json::array();
  size_t filter_index = 0;
  for (size_t n = 0; n < config.pipeline.size(); ++n) {
    const auto& op = config.pipeline[n];
    nlohmann::json o = to_fingerprint_json(op);
    o.update(to_merge_settings_json(op));
    const ScoreStats& stats = merged.scores.at(n);
    double mark = std::nan("");
    if (op.is_filter()) {
      const FilterOutcome& f = merged.filters.at(filter_index++);
      o["rows_in"] = f.rows_in;
      o["kept"] = f.kept;
      o["dropped"] = f.dropped;
      o["effective_threshold"] = cutoff_to_json(f.effective_threshold);  // export reads it back
      if (std::isfinite(f.effective_threshold)) mark = f.effective_threshold;
    } else {
      o["rows_in"] = stats.count + stats.bad_rows;
    }
    o["scores"] = stats.to_json(kReportHistogramBins, mark);
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
      {"rows_in", totals.rows},
      {"rows_out", merged.rows_out},
      {"blank_lines", totals.blank_lines},
      {"error_lines", totals.error_lines},
      {"error_rows", totals.error_rows},
      {"error_records", merged.error_records},
      {"errors_by_reason", totals_json["errors"]},
      {"captions_truncated", totals.captions_truncated},
      {"operators", operators},
      {"embeddings", totals_json["embeddings"]},
      {"embedding_cache",
       {{"enabled", config.processing.cache.write},
        {"lossy_fp16", config.processing.cache.lossy_fp16},
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
        {"worker_seconds", totals_json["seconds"]}}},
      {"ranks", ranks},
      {"ranks_this_run", ranks_this_run(schedule)},
      {"timeline",
       {{"interval_s", schedule.timeline.interval_s}, {"lines", schedule.timeline.lines}}},
      {"error_examples", merged.error_examples},
      {"models", models},
      {"models_loaded", history.models_loaded},
      {"merge_settings", merge_settings(config)},
  };
  const bool refiltered = !history.previous_merge_settings.is_null() &&
                          history.previous_merge_settings != summary["merge_settings"];
  summary["refiltered"] = refiltered;
  if (refiltered) summary["refiltered_from"] = history.previous_merge_settings;
  write_file_atomically(dir.summary(), summary.dump(2) + "\n");
  write_file_atomically(dir.report(), render_report(summary));
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

std::vector<std::string> summary_operator_lines(const nlohmann::json& s) {
  std::vector<std::string> lines;
  if (!s.contains("operators") || !s["operators"].is_array()) return lines;
  for (const auto& o : s["operators"]) {
    const std::string name = o.value("operator", std::string("?"));
    const nlohmann::json scores = o.value("scores", nlohmann::json::object());
    const int64_t bad = scores.value("bad_rows", int64_t{0});
    std::string line = name;
    if (o.contains("kept")) {
      line += " kept " + std::to_string(o.value("kept", int64_t{0})) + " of " +
              std::to_string(o.value("rows_in", int64_t{0})) + " rows, dropped " +
              std::to_string(o.value("dropped", int64_t{0}));
      const auto& cut = o.contains("effective_threshold") ? o["effective_threshold"] : nullptr;
      if (o.contains("top_fraction") && o["top_fraction"].is_number()) {
        line += " (top_fraction " + format_number(o["top_fraction"].get<double>()) + ": cutoff " +
                (cut.is_number() ? format_number(cut.get<double>()) : std::string("none")) + ")";
      } else {
        line += " (threshold " + format_number(o.value("threshold", 0.0)) + ")";
      }
      if (bad > 0) line += ", " + std::to_string(bad) + " of them bad rows";
    } else {
      line += " scored " + std::to_string(o.value("rows_in", int64_t{0})) + " rows";
      if (bad > 0) line += " (" + std::to_string(bad) + " bad, score 0)";
    }
    if (scores.contains("quantiles")) {
      const auto& q = scores["quantiles"];
      line += "; scores p5 " + format_number(q.value("p5", 0.0)) + ", median " +
              format_number(q.value("p50", 0.0)) + ", p95 " + format_number(q.value("p95", 0.0));
    }
    lines.push_back(line);
  }
  return lines;
}

}  // namespace clipshard
