// Re-filter time: a finished ImageClipFilter run of N rows is fabricated (manifest, state.json and
// every shard's parts written with the real ShardPartWriter, similarities from a fixed
// pseudo-random sequence, about 1% bad rows), then the same command is run again with another
// threshold and with a top_fraction — the whole driver path: plan (scan + hash of the manifest),
// state check, re-merge, summary, report. The worker factory throws and the model directory is
// empty, so a run that tried to compute anything would fail. Reports seconds, rows/s and peak RSS.
//
//   bench/refilter_merge ROWS [LINES_PER_SHARD=4096] [WORKDIR=/tmp/clipshard-refilter]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"
#include "shard/input_expansion.h"
#include "shard/shard_plan.h"
#include "shard/part_format.h"

namespace {

using namespace clipshard;

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// User + system CPU seconds of this process so far (robust to other load on a shared machine).
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

RunConfig filter_config(const std::filesystem::path& work, int64_t lines_per_shard,
                        double threshold, std::optional<double> top_fraction) {
  RunConfig config;
  config.inputs = {(work / "manifest.jsonl").string()};
  config.output_dir = (work / "run").string();
  config.lines_per_shard = lines_per_shard;
  config.progress_interval_s = 0;
  OperatorSpec filter = parse_operator_spec(
      {{"operator", "ImageClipFilter"}, {"model_name", (work / "no-model").string()}});
  filter.threshold = threshold;
  filter.top_fraction = top_fraction;
  config.pipeline = {filter};
  return config;
}

// What a finished run leaves: state.json and each shard's parts, as the workers write them.
void fabricate_finished_run(const RunConfig& config) {
  const ShardPlan plan = plan_shards(expand_inputs(config.inputs), config.lines_per_shard);
  RunDirectory dir(config.output_dir);
  check_or_write_state(
      dir, {result_fingerprint(config), manifest_fingerprints(plan), config.lines_per_shard,
            static_cast<int64_t>(plan.shards.size()), merge_settings(config)});
  std::ifstream manifest(config.inputs[0], std::ios::binary);
  std::string line;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (const Shard& shard : plan.shards) {
    ShardPartWriter writer(dir, shard.id);
    int64_t bad = 0;
    for (int64_t i = 0; i < shard.line_count; ++i) {
      std::getline(manifest, line);
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      // A sim in [0, 0.5) as a float: the range a CLIP filter sees; every 97th row is bad (-0.0).
      const bool is_bad = (shard.first_line + i) % 97 == 0;
      const float sim = is_bad ? -0.0f : static_cast<float>((state >> 40) * 0x1p-25);
      if (is_bad) {
        ++bad;
        writer.add_error({config.inputs[0], shard.first_line + i,
                          RowStatus::Error(RowError::kFileNotFound, "no such file"),
                          "ImageClipFilter", "image", false, ""});
      }
      writer.add_row(line, {sim});
    }
    ShardStats stats;
    stats.lines = shard.line_count;
    stats.rows = shard.line_count;
    stats.error_rows = bad;
    stats.errors["file_not_found"] = bad;
    writer.commit(stats, 1);
  }
}

void refilter(const RunConfig& config, const char* what, long long rows) {
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  const double cpu_start = cpu_seconds();
  const auto start = std::chrono::steady_clock::now();
  const int status = run_job_in_process(
      config, options,
      [](const RunConfig&, const WorkerPlacement&) -> std::unique_ptr<ShardProcessor> {
        throw std::runtime_error("a re-filter must not build a worker");
      });
  const double seconds = seconds_since(start);
  const double cpu = cpu_seconds() - cpu_start;
  const auto summary =
      nlohmann::json::parse(read_file(std::filesystem::path(config.output_dir) / "summary.json"));
  std::printf(
      "{\"refilter\": \"%s\", \"rows\": %lld, \"status\": %d, \"refiltered\": %s, \"seconds\": "
      "%.2f, \"cpu_seconds\": %.2f, \"merge_seconds\": %.2f, \"rows_per_second\": %.0f, "
      "\"rows_out\": %lld, \"peak_rss_mb\": %.1f}\n",
      what, rows, status, summary.value("refiltered", false) ? "true" : "false", seconds, cpu,
      summary["timing"].value("merge_seconds", 0.0), rows / seconds,
      static_cast<long long>(summary.value("rows_out", int64_t{0})), peak_rss_kb() / 1024.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: refilter_merge ROWS [LINES_PER_SHARD] [WORKDIR]\n";
    return 2;
  }
  const long long rows = std::atoll(argv[1]);
  const int64_t lines_per_shard = argc > 2 ? std::atoll(argv[2]) : 4096;
  const std::filesystem::path work = argc > 3 ? argv[3] : "/tmp/clipshard-refilter";
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work / "no-model");  // resolves, holds no weights
  {
    std::ofstream out(work / "manifest.jsonl", std::ios::binary);
    for (long long i = 0; i < rows; ++i)
      out << "{\"id\":" << i << ",\"image\":\"shard" << i % 1000 << "/img" << i
          << ".jpg\",\"caption\":\"a photo of thing " << i * 7919 % 100003 << "\"}\n";
  }
  auto start = std::chrono::steady_clock::now();
  fabricate_finished_run(filter_config(work, lines_per_shard, 0.25, std::nullopt));
  std::printf("{\"fabricated_rows\": %lld, \"seconds\": %.2f}\n", rows, seconds_since(start));
  refilter(filter_config(work, lines_per_shard, 0.3, std::nullopt), "threshold 0.25 -> 0.3", rows);
  refilter(filter_config(work, lines_per_shard, 0.3, 0.1), "top_fraction 0.1", rows);
  std::filesystem::remove_all(work);
  return 0;
}
