// A processor that runs no model: it parses every line and writes object rows unchanged (broken
// lines become error records). It exercises everything around inference — scheduling, parts,
// resume, merge — so the runtime is tested and benchmarked without model cost.
#pragma once

#include "worker/shard_processor.h"

namespace clipshard {

struct PassThroughOptions {
  int batch_size = 64;       // lines per progress/stop check
  int delay_us_per_row = 0;  // simulated work per row (tests that kill a run mid-way)
  int filter_columns = 0;    // zero-valued sims columns written per row (merge tests)
};

class PassThroughProcessor : public ShardProcessor {
 public:
  explicit PassThroughProcessor(PassThroughOptions options = {}) : options_(options) {}
  ShardOutcome process(const ShardTask& task, const RunDirectory& dir, int rank,
                       const std::atomic<bool>& stop, const ShardProgress& progress) override;

 private:
  PassThroughOptions options_;
};

}  // namespace clipshard
