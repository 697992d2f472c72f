// The real worker: runs the pipeline's operators over one shard in one pass.
//
// Per shard: parse every line; for each row and operator resolve the image and caption; encode
// each distinct image file once per image space and each distinct token sequence once per text
// space; score; write parts. Decoding runs on a thread pool a few batches ahead of inference
// (bounded memory); image batches are formed in first-appearance order within the shard, text
// batches in order of token length (ties in first-appearance order), so their composition depends
// only on the input and the config (never on ranks or on earlier crashes). The processor owns what
// outlives a shard (models, decode pool, reuse cache); the work on a shard is a sequence of named
// phases, worker/shard_phases.h.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "worker/clip_processor_options.h"
#include "worker/model_bank.h"
#include "worker/shard_processor.h"

namespace clipshard {

class ClipShardProcessor : public ShardProcessor {
 public:
  // `models` is shared with nothing else while process() runs.
  ClipShardProcessor(std::vector<OperatorSpec> ops, std::shared_ptr<ModelBank> models,
                     ClipProcessorOptions options);
  ~ClipShardProcessor() override;

  ShardOutcome process(const ShardTask& task, const RunDirectory& dir, int rank,
                       const std::atomic<bool>& stop, const ShardProgress& progress) override;
  std::vector<OperatorModelInfo> models() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipshard
