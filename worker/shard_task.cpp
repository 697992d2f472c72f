#include "worker/shard_processor.h"

namespace clipshard {

ShardTask make_shard_task(const ShardPlan& plan, int64_t id) {
  ShardTask task;
  task.shard = plan.shards.at(id);
  task.manifest = plan.manifests.at(task.shard.manifest).path;
  for (int i = 0; i < task.shard.manifest; ++i) task.global_base += plan.manifests[i].lines;
  return task;
}

}  // namespace clipshard
