#include "driver/worker_loop.h"

#include <chrono>

#include "driver/model_identity.h"

namespace clipshard {

WorkerExit run_worker_loop(Transport& transport, int driver_rank, ShardProcessor& processor,
                           const RunDirectory& dir, const std::atomic<bool>& stop) {
  return run_worker_loop(
      transport, driver_rank, [&]() -> ShardProcessor& { return processor; }, dir, stop);
}

WorkerExit run_worker_loop(Transport& transport, int driver_rank,
                           const std::function<ShardProcessor&()>& processor,
                           const RunDirectory& dir, const std::atomic<bool>& stop) {
  using Clock = std::chrono::steady_clock;
  ShardProcessor* ready = nullptr;  // built on the driver's kLoad
  for (;;) {
    transport.send(driver_rank, {MessageType::kRequest, 0, -1, 0, ""});
    std::optional<Message> reply;
    while (!(reply = transport.receive(1.0))) {
    }
    if (reply->type == MessageType::kNoMore) return WorkerExit::kNoMoreWork;
    if (reply->type == MessageType::kLoad && !ready) {
      try {
        ready = &processor();
        transport.send(driver_rank,
                       {MessageType::kReady, 0, -1, 0, encode_models(ready->models())});
      } catch (const std::exception& e) {
        transport.send(driver_rank, {MessageType::kFailed, 0, -1, 0, e.what()});
        return WorkerExit::kFailed;
      }
      continue;
    }
    if (reply->type != MessageType::kAssign || !ready) {
      transport.send(driver_rank,
                     {MessageType::kFailed, 0, -1, 0,
                      std::string("unexpected message ") + message_type_name(reply->type)});
      return WorkerExit::kFailed;
    }
    const int64_t shard = reply->shard;
    auto last_sent = Clock::now();
    auto progress = [&](int64_t lines_done) {
      const auto now = Clock::now();
      if (std::chrono::duration<double>(now - last_sent).count() < 0.25) return;
      last_sent = now;
      transport.send(driver_rank, {MessageType::kProgress, 0, shard, lines_done, ""});
    };
    ShardOutcome outcome;
    try {
      outcome =
          ready->process(decode_shard_task(reply->text), dir, transport.rank(), stop, progress);
    } catch (const std::exception& e) {
      transport.send(driver_rank, {MessageType::kFailed, 0, shard, 0, e.what()});
      return WorkerExit::kFailed;
    }
    if (outcome == ShardOutcome::kInterrupted) {
      transport.send(driver_rank, {MessageType::kInterrupted, 0, shard, 0, ""});
      return WorkerExit::kInterrupted;
    }
    transport.send(driver_rank, {MessageType::kFinished, 0, shard, 0, ""});
  }
}

}  // namespace clipshard
