#include "worker/shard_lines.h"

#include <stdexcept>
#include <string>

namespace clipshard {

bool for_each_shard_line(const ShardTask& task, ShardStats* stats, std::vector<ErrorRecord>* errors,
                         const ShardRowFn& on_row, const ShardLineFn& after_line) {
  const Shard& shard = task.shard;
  RowSource reader(task.kind, task.manifest, task.url, shard.byte_begin, shard.first_line);
  SourceRow line;
  for (int64_t i = 0; i < shard.line_count; ++i) {
    if (!reader.next(&line))
      throw std::runtime_error("input " + task.manifest +
                               " is shorter than planned (changed during the run?)");
    const ParsedLine& parsed = line.parsed;
    if (parsed.kind == LineKind::kRow) {
      on_row(line);
    } else if (parsed.kind == LineKind::kBroken) {
      errors->push_back(
          {task.manifest, line.line, parsed.status, "", "", line.from_tar, line.sample});
      stats->count_error(std::string(row_error_name(parsed.status.code)));
      ++stats->error_lines;
    } else {
      ++stats->blank_lines;
    }
    if (after_line && !after_line(i + 1)) return false;
  }
  return true;
}

}  // namespace clipshard
