// The driver role: hands shards out on demand (a worker that finishes asks for the next one, so a
// fast worker is never idle while a slow one holds a queue), tracks heartbeats and progress, and
// stops cleanly on a signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "driver/transport.h"
#include "shard/shard_plan.h"

namespace clipshard {

struct SchedulerOptions {
  double progress_interval_s = 10.0;  // progress line period (0 = never)
  double worker_timeout_s = 1800.0;   // a worker holding a shard silent this long = failure
  std::ostream* log = nullptr;        // progress lines (stderr by default)
  // Called with a worker's kReady (rank, text) before that worker is given any shard; throwing
  // aborts the schedule with that exception. Unset: kReady is ignored.
  std::function<void(int rank, const std::string& text)> on_ready;
};

// Lines finished over time, bounded: at most kMaxPoints intervals of interval_s seconds from the
// start of the run; when a line lands past the last one, neighbouring intervals are merged in
// pairs and interval_s doubles (so a run of any length keeps <= kMaxPoints numbers).
struct Timeline {
  static constexpr size_t kMaxPoints = 240;
  double interval_s = 1.0;
  std::vector<int64_t> lines;  // lines finished in [i * interval_s, (i + 1) * interval_s)
  void add(double seconds_since_start, int64_t count);
};

// What one worker rank did in this run.
struct RankActivity {
  int64_t shards = 0;
  int64_t lines = 0;
  double busy_seconds = 0.0;  // from each assignment to its kFinished
};

struct ScheduleResult {
  bool complete = false;            // every shard of `todo` finished
  int64_t shards_finished = 0;      // in this run
  int64_t lines_finished = 0;       // lines of the shards finished in this run
  std::vector<int64_t> unfinished;  // shards of `todo` not finished (stopped by a signal)
  double seconds = 0.0;
  std::map<int, int64_t> shards_per_rank;
  Timeline timeline;                  // from kProgress / kFinished messages
  std::map<int, RankActivity> ranks;  // ranks that finished at least one shard
};

// A worker reported a failure or stopped answering: names the rank and what it was doing.
class WorkerFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Serves `todo` (shard ids, in plan order) to `workers` (ranks on `transport`) until every shard
// is finished or `stop` is raised and every worker has reported back. Each worker gets kNoMore
// exactly once. Throws WorkerFailure on kFailed or a heartbeat timeout.
ScheduleResult run_scheduler(Transport& transport, const ShardPlan& plan,
                             const std::vector<int64_t>& todo, const std::vector<int>& workers,
                             const SchedulerOptions& options, const std::atomic<bool>& stop);

}  // namespace clipshard
