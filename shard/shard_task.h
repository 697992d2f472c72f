// One shard as a unit of work: what the driver sends a worker (workers never scan the manifests
// themselves), and its encoding in the kAssign message (driver/messages.h).
#pragma once

#include <cstdint>
#include <string>

#include "shard/shard_plan.h"

namespace clipshard {

// Everything a worker needs to process one shard.
struct ShardTask {
  Shard shard;
  std::string manifest;  // path of plan.manifests[shard.manifest] (a manifest or a tar)
  InputKind kind = InputKind::kManifest;
  std::string url;          // the input as the user gave it (tar rows' __url__)
  int64_t global_base = 0;  // global row id of the manifest's first line (lines of the manifests
                            // before it), so rows have one id across all manifests
};

// The task for plan.shards[id]. Throws std::out_of_range for an id outside the plan.
ShardTask make_shard_task(const ShardPlan& plan, int64_t id);

// The task as kAssign's text (a JSON object), and back. decode_shard_task throws
// nlohmann::json's exceptions for a text that encode_shard_task did not write.
std::string encode_shard_task(const ShardTask& task);
ShardTask decode_shard_task(const std::string& text);

}  // namespace clipshard
