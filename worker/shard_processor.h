// What a worker does with one shard. The runtime (driver/) only sees this interface, so the
// scheduler, resume and merge are tested with a cheap processor and benchmarked with a no-op one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shard/run_directory.h"
#include "shard/shard_task.h"

namespace clipshard {

enum class ShardOutcome {
  kFinished,     // every part committed; the shard's done file exists
  kInterrupted,  // the stop flag was raised: nothing of this shard was committed
};

// Called after each batch with the number of lines of the shard handled so far (heartbeat).
using ShardProgress = std::function<void(int64_t lines_done)>;

// How one pipeline operator runs on a worker rank, as resolved there (the device from
// `device: auto`, the precision from `precision: auto`, the weights the name resolved to). The
// identity fields (device_type, precision, fingerprint) change results: a run's ranks must agree
// on them, and a resume must resolve them as the run did.
struct OperatorModelInfo {
  std::string op;             // operator name, e.g. "ImageCLIPEvaluator"
  std::string model_name;     // as configured
  std::string resolved_path;  // the directory or file the name resolved to
  std::string weights_file;   // the checkpoint file read
  std::string format;         // models/clip model_format_name
  std::string fingerprint;    // the weights' content fingerprint (the embedding cache's model id)
  std::string device;         // "cpu", "cuda:1", ...
  std::string device_type;    // "cpu" or "cuda"
  std::string precision;      // "fp32", "fp16" or "bf16"
};

class ShardProcessor {
 public:
  virtual ~ShardProcessor() = default;
  // One entry per pipeline operator, in pipeline order; empty for processors without models.
  virtual std::vector<OperatorModelInfo> models() const { return {}; }
  // Processes every line of the task's shard and commits its parts into
  // `dir` (docs/FORMATS.md), the done file last; `rank` is recorded in the shard's statistics.
  // Bad rows are data (error records). Checks `stop` between batches. Throws std::runtime_error
  // for broken infrastructure (unreadable manifest, unwritable directory, model failure).
  virtual ShardOutcome process(const ShardTask& task, const RunDirectory& dir, int rank,
                               const std::atomic<bool>& stop, const ShardProgress& progress) = 0;
};

}  // namespace clipshard
