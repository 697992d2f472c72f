// The driver/worker protocol: a few typed messages, the same over MPI and in process.
//
//   worker                         driver (rank 0)
//   kRequest  ───────────────────▶  next unfinished shard in plan order, or
//             ◀───────────────────  kAssign(shard) | kNoMore
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
};

struct Message {
  MessageType type = MessageType::kRequest;
  int32_t from = 0;  // sender rank (filled by the transport on receive)
  int64_t shard = -1;
  int64_t value = 0;  // kProgress: lines done; kFinished: rows written
  std::string text;   // kFailed: the error message
};

// The type's name for log and error messages ("request", "assign", ...; "?" for an unknown value).
const char* message_type_name(MessageType type);

}  // namespace clipshard
