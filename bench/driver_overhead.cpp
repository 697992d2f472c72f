// Driver + merge overhead: a synthetic manifest of N rows run through the whole runtime —
// plan (scan + hash), scheduling over in-process workers, per-shard parts, ordered merge, summary —
// with a no-op scorer (PassThroughProcessor), so the figure is everything clipshard adds around
// inference. Reports rows/s and peak RSS; run it at two sizes to see that memory does not grow
// with the number of rows. The merge alone is reported too (summary.json's merge_seconds): with
// FILTER=0 (no operator) each output part is appended whole; with FILTER=1 an ImageClipFilter
// (threshold 0, all-zero sims: every row kept) makes the merge decide and measure row by row,
// as in a real run. No model is loaded: the workers are pass-through.
//
//   bench/driver_overhead ROWS [WORKERS=2] [LINES_PER_SHARD=4096] [WORKDIR=/tmp/clipshard-bench]
//                         [FILTER=0]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "driver/job.h"
#include "driver/signals.h"
#include "worker/pass_through_processor.h"

namespace {

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace clipshard;
  if (argc < 2) {
    std::cerr << "usage: driver_overhead ROWS [WORKERS] [LINES_PER_SHARD] [WORKDIR]\n";
    return 2;
  }
  const long long rows = std::atoll(argv[1]);
  const int workers = argc > 2 ? std::atoi(argv[2]) : 2;
  const long long lines_per_shard = argc > 3 ? std::atoll(argv[3]) : 4096;
  const std::filesystem::path work = argc > 4 ? argv[4] : "/tmp/clipshard-bench";
  const int filter_columns = argc > 5 ? std::atoi(argv[5]) : 0;
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);

  const auto manifest = work / "manifest.jsonl";
  {
    std::ofstream out(manifest, std::ios::binary);
    std::string line;
    for (long long i = 0; i < rows; ++i) {
      line = "{\"id\":" + std::to_string(i) + ",\"image\":\"shard" + std::to_string(i % 1000) +
             "/img" + std::to_string(i) + ".jpg\",\"caption\":\"a photo of thing " +
             std::to_string(i * 7919 % 100003) + "\"}\n";
      out << line;
    }
  }
  const long rss_after_generate = peak_rss_kb();
  const auto bytes = std::filesystem::file_size(manifest);

  RunConfig config;
  config.inputs = {manifest.string()};
  config.output_dir = (work / "run").string();
  config.lines_per_shard = lines_per_shard;
  config.progress_interval_s = 0;
  for (int f = 0; f < filter_columns; ++f) {
    std::filesystem::create_directories(work / "no-model");  // resolves; never loaded
    OperatorSpec filter = parse_operator_spec(
        {{"operator", "ImageClipFilter"}, {"model_name", (work / "no-model").string()}});
    filter.threshold = 0.0;
    config.pipeline.push_back(filter);
  }
  JobOptions options;
  options.in_process_workers = workers;
  std::ostringstream log;
  options.log = &log;
  const auto start = std::chrono::steady_clock::now();
  const int status =
      run_job_in_process(config, options, [&](const RunConfig&, const WorkerPlacement&) {
        return std::make_unique<PassThroughProcessor>(PassThroughOptions{4096, 0, filter_columns});
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto out_bytes = std::filesystem::file_size(work / "run" / "output.jsonl");
  std::ifstream summary_file(work / "run" / "summary.json");
  const auto summary = nlohmann::json::parse(summary_file);
  const double merge_seconds = summary["timing"].value("merge_seconds", 0.0);
  std::printf(
      "{\"rows\": %lld, \"manifest_bytes\": %llu, \"workers\": %d, \"lines_per_shard\": %lld, "
      "\"filters\": %d, \"status\": %d, \"seconds\": %.2f, \"rows_per_second\": %.0f, "
      "\"merge_seconds\": %.2f, \"merge_rows_per_second\": %.0f, \"output_bytes\": %llu, "
      "\"peak_rss_mb\": %.1f, \"peak_rss_mb_before_run\": %.1f}\n",
      rows, static_cast<unsigned long long>(bytes), workers, lines_per_shard, filter_columns,
      status, seconds, rows / seconds, merge_seconds, rows / merge_seconds,
      static_cast<unsigned long long>(out_bytes), peak_rss_kb() / 1024.0,
      rss_after_generate / 1024.0);
  std::filesystem::remove_all(work);
  return status;
}
