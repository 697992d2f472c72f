// The one walk over a shard's lines (tar: samples) that every processor uses, so that blank
// lines, broken lines and an input shorter than its plan are handled one way.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "shard/part_format.h"
#include "shard/row_source.h"
#include "shard/shard_stats.h"
#include "shard/shard_task.h"

namespace clipshard {

// Called for each object row, in line order; it may move the row's fields out.
using ShardRowFn = std::function<void(SourceRow& row)>;
// Called after each line (of any kind) with the number of lines walked so far; false stops the
// walk.
using ShardLineFn = std::function<bool(int64_t lines_done)>;

// Walks the task's shard.line_count lines with RowSource. Per line: a blank line counts in
// stats->blank_lines; a broken line (not a JSON object, a bad tar sample) appends its error record
// (no operator, no key) to *errors and counts in stats->errors (count_error) and
// stats->error_lines, and gives no row; an object row goes to on_row. Then after_line, when set.
// Returns true when every line was walked, false when after_line stopped the walk. Throws
// std::runtime_error naming the input when it cannot be opened or ends before shard.line_count
// lines (it changed during the run).
bool for_each_shard_line(const ShardTask& task, ShardStats* stats, std::vector<ErrorRecord>* errors,
                         const ShardRowFn& on_row, const ShardLineFn& after_line = {});

}  // namespace clipshard
