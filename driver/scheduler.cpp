#include "driver/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <iostream>
#include <set>

#include "shard/shard_task.h"

namespace clipshard {

namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

struct Busy {
  int64_t shard = -1;
  int64_t lines_done = 0;
  Clock::time_point last_heard;
  Clock::time_point assigned;
};

}  // namespace

void Timeline::add(double seconds_since_start, int64_t count) {
  if (count <= 0) return;
  const double t = std::max(0.0, seconds_since_start);
  size_t index = static_cast<size_t>(t / interval_s);
  while (index >= kMaxPoints) {
    std::vector<int64_t> merged((lines.size() + 1) / 2, 0);
    for (size_t i = 0; i < lines.size(); ++i) merged[i / 2] += lines[i];
    lines = std::move(merged);
    interval_s *= 2;
    index = static_cast<size_t>(t / interval_s);
  }
  if (lines.size() <= index) lines.resize(index + 1, 0);
  lines[index] += count;
}

ScheduleResult run_scheduler(Transport& transport, const ShardPlan& plan,
                             const std::vector<int64_t>& todo, const std::vector<int>& workers,
                             const SchedulerOptions& options, const std::atomic<bool>& stop) {
  std::ostream& log = options.log ? *options.log : std::cerr;
  ScheduleResult result;
  const auto start = Clock::now();
  std::deque<int64_t> queue(todo.begin(), todo.end());
  std::set<int64_t> unfinished(todo.begin(), todo.end());
  std::map<int, Busy> busy;
  std::set<int> ready;  // ranks whose kReady arrived (and passed on_ready): only they get shards
  std::set<int> active(workers.begin(), workers.end());
  int64_t todo_lines = 0;
  for (int64_t id : todo) todo_lines += plan.shards.at(id).line_count;
  auto last_progress = start;
  bool announced_stop = false;

  auto print_progress = [&](bool final_line) {
    int64_t in_flight = 0;
    for (const auto& [rank, b] : busy) in_flight += b.lines_done;
    const int64_t done = result.lines_finished + in_flight;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    const double eta = rate > 0 ? (todo_lines - done) / rate : NAN;
    char line[256];
    std::snprintf(line, sizeof line,
                  "clipshard: %s %lld/%lld lines (%.1f%%), %.1f lines/s, ETA %s, shards %lld/%zu, "
                  "%zu workers busy",
                  final_line ? "done" : "progress", static_cast<long long>(done),
                  static_cast<long long>(todo_lines),
                  todo_lines ? 100.0 * done / todo_lines : 100.0, rate,
                  final_line ? "0s" : format_duration(eta).c_str(),
                  static_cast<long long>(result.shards_finished), todo.size(), busy.size());
    log << line << std::endl;
  };

  while (!active.empty()) {
    if (stop.load() && !announced_stop) {
      announced_stop = true;
      log << "clipshard: stop requested: finishing the current batches, then exiting" << std::endl;
    }
    auto message = transport.receive(0.2);
    const auto now = Clock::now();
    if (options.progress_interval_s > 0 &&
        std::chrono::duration<double>(now - last_progress).count() >= options.progress_interval_s) {
      print_progress(false);
      last_progress = now;
    }
    for (const auto& [rank, b] : busy) {
      const double silent = std::chrono::duration<double>(now - b.last_heard).count();
      if (silent > options.worker_timeout_s) {
        const auto& s = plan.shards.at(b.shard);
        throw WorkerFailure("worker rank " + std::to_string(rank) + " sent nothing for " +
                            std::to_string(static_cast<int>(silent)) +
                            " s while processing shard " + std::to_string(b.shard) + " (lines " +
                            std::to_string(s.first_line) + ".." +
                            std::to_string(s.first_line + s.line_count - 1) + " of " +
                            plan.manifests.at(s.manifest).path +
                            "); aborting the job — run the "
                            "same command again to resume");
      }
    }
    if (!message) continue;
    const int from = message->from;
    switch (message->type) {
      case MessageType::kReady: {
        if (options.on_ready) options.on_ready(from, message->text);
        ready.insert(from);
        break;
      }
      case MessageType::kRequest: {
        if (stop.load() || queue.empty()) {
          transport.send(from, {MessageType::kNoMore, 0, -1, 0, ""});
          active.erase(from);
          busy.erase(from);
        } else if (!ready.count(from)) {
          transport.send(from, {MessageType::kLoad, 0, -1, 0, ""});
        } else {
          const int64_t id = queue.front();
          queue.pop_front();
          busy[from] = {id, 0, now, now};
          transport.send(
              from, {MessageType::kAssign, 0, id, 0, encode_shard_task(make_shard_task(plan, id))});
        }
        break;
      }
      case MessageType::kProgress: {
        auto it = busy.find(from);
        if (it != busy.end()) {
          result.timeline.add(std::chrono::duration<double>(now - start).count(),
                              message->value - it->second.lines_done);
          it->second.lines_done = std::max(it->second.lines_done, message->value);
          it->second.last_heard = now;
        }
        break;
      }
      case MessageType::kFinished: {
        const int64_t id = message->shard;
        const auto it = busy.find(from);
        if (unfinished.erase(id)) {
          const int64_t lines = plan.shards.at(id).line_count;
          ++result.shards_finished;
          result.lines_finished += lines;
          ++result.shards_per_rank[from];
          RankActivity& activity = result.ranks[from];
          ++activity.shards;
          activity.lines += lines;
          if (it != busy.end()) {
            activity.busy_seconds +=
                std::chrono::duration<double>(now - it->second.assigned).count();
            result.timeline.add(std::chrono::duration<double>(now - start).count(),
                                lines - it->second.lines_done);
          } else {
            result.timeline.add(std::chrono::duration<double>(now - start).count(), lines);
          }
        }
        if (it != busy.end()) busy.erase(it);
        break;
      }
      case MessageType::kInterrupted: {
        busy.erase(from);
        active.erase(from);  // an interrupted worker exits without asking again
        break;
      }
      case MessageType::kFailed: {
        std::string what = "worker rank " + std::to_string(from) + " failed";
        if (message->shard >= 0) {
          const auto& s = plan.shards.at(message->shard);
          what += " on shard " + std::to_string(message->shard) + " (lines " +
                  std::to_string(s.first_line) + ".." +
                  std::to_string(s.first_line + s.line_count - 1) + " of " +
                  plan.manifests.at(s.manifest).path + ")";
        }
        throw WorkerFailure(what + ": " + message->text);
      }
      default:
        throw WorkerFailure("unexpected message " + std::string(message_type_name(message->type)) +
                            " from rank " + std::to_string(from));
    }
  }
  result.unfinished.assign(unfinished.begin(), unfinished.end());
  result.complete = unfinished.empty();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (options.progress_interval_s > 0 && result.complete) print_progress(true);
  return result;
}

}  // namespace clipshard
