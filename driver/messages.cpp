#include "driver/messages.h"

namespace clipshard {

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kRequest:
      return "request";
    case MessageType::kAssign:
      return "assign";
    case MessageType::kNoMore:
      return "no-more";
    case MessageType::kProgress:
      return "progress";
    case MessageType::kFinished:
      return "finished";
    case MessageType::kInterrupted:
      return "interrupted";
    case MessageType::kFailed:
      return "failed";
    case MessageType::kReady:
      return "ready";
    case MessageType::kLoad:
      return "load";
  }
  return "?";
}

}  // namespace clipshard
