// What a worker does with one shard. The runtime (driver/) only sees this interface, so the
// scheduler, resume and merge are tested with a cheap processor and benchmarked with a no-op one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "shard/run_directory.h"
#include "shard/shard_task.h"

namespace clipshard {

enum class ShardOutcome {
  kFinished,     // every part committed; the shard's done file exists
  kInterrupted,  // the stop flag was raised: nothing of this shard was committed
};

// Called after each batch with the number of lines of the shard handled so far (heartbeat).
using ShardProgress = std::function<void(int64_t lines_done)>;

class ShardProcessor {
 public:
  virtual ~ShardProcessor() = default;
  // Processes every line of the task's shard and commits its parts into
  // `dir` (docs/FORMATS.md), the done file last; `rank` is recorded in the shard's statistics.
  // Bad rows are data (error records). Checks `stop` between batches. Throws std::runtime_error
  // for broken infrastructure (unreadable manifest, unwritable directory, model failure).
  virtual ShardOutcome process(const ShardTask& task, const RunDirectory& dir, int rank,
                               const std::atomic<bool>& stop, const ShardProgress& progress) = 0;
};

}  // namespace clipshard
