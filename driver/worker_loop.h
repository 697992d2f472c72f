// The worker role: ask the driver for a shard, process it, report, repeat until kNoMore.
#pragma once

#include <atomic>

#include "driver/transport.h"
#include "shard/run_directory.h"
#include "worker/shard_processor.h"

namespace clipshard {

enum class WorkerExit { kNoMoreWork, kInterrupted, kFailed };

// Runs until the driver says kNoMore (kNoMoreWork), `stop` interrupts a shard (kInterrupted,
// after telling the driver), or processing throws (kFailed, after sending kFailed with the
// message to the driver, which aborts the job).
WorkerExit run_worker_loop(Transport& transport, int driver_rank, ShardProcessor& processor,
                           const RunDirectory& dir, const std::atomic<bool>& stop);

}  // namespace clipshard
