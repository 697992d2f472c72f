// The driver/worker protocol: a few typed messages, the same over MPI and in process.
//
//   worker                         driver (rank 0)
//   kRequest  ───────────────────▶  next unfinished shard in plan order, or
//             ◀───────────────────  kAssign(shard) | kNoMore | kLoad
//   kLoad: there is work, and this rank has not reported its models yet: the worker builds its
//          processor (loads the models) and answers
//   kReady(models) ──────────────▶  once, before any shard: how each operator runs on this rank
//                                   (device, precision, weights; driver/model_identity.h). The
//                                   driver checks it against the run's recorded values and the
//                                   other ranks', and aborts the job when they differ; the worker
//                                   then sends kRequest again. A worker that only ever hears
//                                   kNoMore loads no model (a re-filter of a finished run)
//   kProgress(shard, lines done) ▶  (after each batch: heartbeat, progress, ETA)
//   kFinished(shard, rows) ──────▶  the shard's parts are committed
//   kInterrupted(shard) ─────────▶  stopped on a signal; the shard is not committed; worker exits
//   kFailed(shard, message) ─────▶  broken infrastructure on that worker; the job aborts
//   then kRequest again, until kNoMore.
#pragma once

#include <cstdint>
#include <string>

namespace clipshard {

enum class MessageType : int32_t {
  kRequest = 1,
  kAssign = 2,
  kNoMore = 3,
  kProgress = 4,
  kFinished = 5,
  kInterrupted = 6,
  kFailed = 7,
  kReady = 8,
  kLoad = 9,
};

struct Message {
  MessageType type = MessageType::kRequest;
  int32_t from = 0;  // sender rank (filled by the transport on receive)
  int64_t shard = -1;
  int64_t value = 0;  // kProgress: lines done; kFinished: rows written
  std::string text;   // kFailed: the error message; kReady: the models (JSON); kAssign: the task
};

// The type's name for log and error messages ("request", "assign", ...; "?" for an unknown value).
const char* message_type_name(MessageType type);

}  // namespace clipshard
