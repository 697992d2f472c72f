#include "worker/shard_processor.h"

namespace clipshard {

ShardTask make_shard_task(const ShardPlan& plan, int64_t id) {
  ShardTask task;
  task.shard = plan.shards.at(id);
  const ManifestInfo& input = plan.manifests.at(task.shard.manifest);
  task.manifest = input.path;
  task.kind = input.kind;
  task.url = input.url;
  for (int i = 0; i < task.shard.manifest; ++i) task.global_base += plan.manifests[i].lines;
  return task;
}

}  // namespace clipshard
