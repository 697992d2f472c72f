#include "worker/pass_through_processor.h"

#include <chrono>
#include <thread>

#include "shard/part_format.h"
#include "worker/shard_lines.h"

namespace clipshard {

ShardOutcome PassThroughProcessor::process(const ShardTask& task, const RunDirectory& dir, int rank,
                                           const std::atomic<bool>& stop,
                                           const ShardProgress& progress) {
  ShardPartWriter writer(dir, task.shard.id);
  const std::vector<float> sims(options_.filter_columns, 0.0f);
  ShardStats stats;
  std::vector<ErrorRecord> errors;
  const bool walked = for_each_shard_line(
      task, &stats, &errors,
      [&](SourceRow& line) {
        writer.add_row(dump_row(line.parsed.object), sims);
        ++stats.rows;
      },
      [&](int64_t lines_done) {
        if (options_.delay_us_per_row > 0)
          std::this_thread::sleep_for(std::chrono::microseconds(options_.delay_us_per_row));
        if (lines_done % options_.batch_size == 0) {
          if (stop.load()) return false;
          if (progress) progress(lines_done);
        }
        return true;
      });
  if (!walked) return ShardOutcome::kInterrupted;
  for (const ErrorRecord& e : errors) writer.add_error(e);
  stats.lines = task.shard.line_count;
  writer.commit(stats, rank);
  return ShardOutcome::kFinished;
}

}  // namespace clipshard
