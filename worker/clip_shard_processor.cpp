#include "worker/clip_shard_processor.h"

#include <algorithm>

#include "worker/shard_phases.h"
#include "worker/thread_pool.h"

namespace clipshard {

// What outlives one shard: the models, the decode pool and the reuse cache. The work on a shard is
// worker/shard_phases.h.
struct ClipShardProcessor::Impl {
  std::vector<OperatorSpec> ops;
  std::shared_ptr<ModelBank> models;
  ClipProcessorOptions options;
  ReuseCache reuse;
  ThreadPool pool;  // last: destroyed (its queued decode tasks finished) before what they read

  Impl(std::vector<OperatorSpec> o, std::shared_ptr<ModelBank> m, ClipProcessorOptions opt)
      : ops(std::move(o)),
        models(std::move(m)),
        options(std::move(opt)),
        reuse(options.cache.reuse),
        pool(std::max(1, options.decode_threads)) {
    // Decoding may scale a JPEG down (reduced_decode) only as far as the largest preprocessing
    // still needs.
    int target = 0;
    for (const auto& s : models->image_spaces()) target = std::max(target, s.spec.size);
    options.decode.target_short_side = target;
  }
};

ClipShardProcessor::ClipShardProcessor(std::vector<OperatorSpec> ops,
                                       std::shared_ptr<ModelBank> models,
                                       ClipProcessorOptions options)
    : impl_(std::make_unique<Impl>(std::move(ops), std::move(models), std::move(options))) {}

ClipShardProcessor::~ClipShardProcessor() = default;

std::vector<OperatorModelInfo> ClipShardProcessor::models() const {
  return impl_->models->operator_models();
}

ShardOutcome ClipShardProcessor::process(const ShardTask& task, const RunDirectory& dir, int rank,
                                         const std::atomic<bool>& stop,
                                         const ShardProgress& progress) {
  Impl& m = *impl_;
  const ShardContext ctx{task, m.ops, *m.models, m.options, m.pool, m.reuse, stop, progress};
  return process_shard(ctx, dir, rank);
}

}  // namespace clipshard
