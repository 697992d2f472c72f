#include "worker/pass_through_processor.h"

#include <chrono>
#include <thread>

#include "shard/part_format.h"
#include "shard/row_source.h"

namespace clipshard {

ShardOutcome PassThroughProcessor::process(const ShardTask& task, const RunDirectory& dir, int rank,
                                           const std::atomic<bool>& stop,
                                           const ShardProgress& progress) {
  const Shard& shard = task.shard;
  const std::string& manifest = task.manifest;
  RowSource reader(task.kind, manifest, task.url, shard.byte_begin, shard.first_line);
  ShardPartWriter writer(dir, shard.id);
  const std::vector<float> sims(options_.filter_columns, 0.0f);
  ShardStats stats;
  SourceRow line;
  for (int64_t i = 0; i < shard.line_count; ++i) {
    if (!reader.next(&line))
      throw std::runtime_error("manifest " + manifest + " is shorter than planned");
    ParsedLine& parsed = line.parsed;
    if (parsed.kind == LineKind::kRow) {
      writer.add_row(dump_row(parsed.object), sims);
      ++stats.rows;
    } else if (parsed.kind == LineKind::kBroken) {
      writer.add_error({manifest, line.line, parsed.status, "", "", line.from_tar, line.sample});
      stats.count_error(std::string(row_error_name(parsed.status.code)));
      ++stats.error_lines;
    } else {
      ++stats.blank_lines;
    }
    if (options_.delay_us_per_row > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(options_.delay_us_per_row));
    if ((i + 1) % options_.batch_size == 0) {
      if (stop.load()) return ShardOutcome::kInterrupted;
      if (progress) progress(i + 1);
    }
  }
  stats.lines = shard.line_count;
  writer.commit(stats, rank);
  return ShardOutcome::kFinished;
}

}  // namespace clipshard
