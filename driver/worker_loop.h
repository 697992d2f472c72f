// The worker role: ask the driver for a shard, process it, report, repeat until kNoMore.
#pragma once

#include <atomic>
#include <functional>

#include "driver/transport.h"
#include "shard/run_directory.h"
#include "worker/shard_processor.h"

namespace clipshard {

enum class WorkerExit { kNoMoreWork, kInterrupted, kFailed };

// Asks for shards until the driver says kNoMore (kNoMoreWork), `stop` interrupts a shard
// (kInterrupted, after telling the driver), or processing throws (kFailed, after sending kFailed
// with the message to the driver, which aborts the job).
WorkerExit run_worker_loop(Transport& transport, int driver_rank, ShardProcessor& processor,
                           const RunDirectory& dir, const std::atomic<bool>& stop);

// Both forms answer the driver's kLoad with kReady (the processor's models) before any shard.
// Here the processor is built on demand: `processor` is called (on this thread) on kLoad, which the
// driver sends only when there is work, so a worker that gets no shard never builds one (never
// loads a model). A throw from it fails the job like a throw from process() (kFailed with the
// message).
WorkerExit run_worker_loop(Transport& transport, int driver_rank,
                           const std::function<ShardProcessor&()>& processor,
                           const RunDirectory& dir, const std::atomic<bool>& stop);

}  // namespace clipshard
