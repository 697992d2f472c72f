// A whole clipshard run: plan the shards, take the run directory (lock, resume check), serve the
// shards to the workers, merge, write the summary. The same code runs as one process (a driver
// thread plus worker threads over InProcessTransport) and as an MPI job (rank 0 = driver).
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>

#include "driver/run_config.h"
#include "worker/shard_processor.h"

namespace clipshard {

// Where a worker runs: its rank, its rank among the ranks of its node and how many ranks share
// the node (for the GPU choice and the thread budget).
struct WorkerPlacement {
  int rank = 0;
  int local_rank = 0;
  int ranks_on_node = 1;
};

// Builds the processor of one worker. Called on the worker's own thread/rank, before it asks for
// work; throwing here (e.g. a model that cannot be loaded) fails the job with the message.
using ProcessorFactory =
    std::function<std::unique_ptr<ShardProcessor>(const RunConfig&, const WorkerPlacement&)>;

// The real processor: loads the pipeline's models (ModelBank) with the device and thread budget
// of `placement` and returns a ClipShardProcessor.
std::unique_ptr<ShardProcessor> make_clip_processor(const RunConfig& config,
                                                    const WorkerPlacement& placement);

// What make_clip_processor gives its ClipShardProcessor: config.processing as configured, with
// what the worker decides filled in. decode_threads 0 (automatic) becomes, at least 1, all but
// one of `cpu_budget` on a GPU (the CPU only decodes) and a quarter of it on the CPU (inference
// takes the cores); with the cache enabled the run directory's own embeddings.h5 comes first in
// the reuse list; a disabled cache reuses nothing.
ClipProcessorOptions worker_processor_options(const RunConfig& config, bool gpu, int cpu_budget);

struct JobOptions {
  // Discard finished shards of a different earlier run. Without it a run directory whose
  // state.json belongs to another config or input is refused, unless no shard there is finished
  // (then the old state protects nothing and is replaced).
  bool restart = false;
  int in_process_workers = 1;   // single-process mode: worker threads (tests use several)
  std::ostream* log = nullptr;  // progress and messages (stderr by default)
};

// Runs the job in this process (no MPI). Returns an exit status of driver/signals.h; throws
// std::runtime_error (bad config, unwritable directory, missing model, worker failure).
int run_job_in_process(const RunConfig& config, const JobOptions& options,
                       const ProcessorFactory& factory = make_clip_processor);

// Runs this rank's part of an MPI job (call on every rank). Rank 0 is the driver; with one rank
// the driver also works in a thread. Returns the exit status; fatal errors call MPI_Abort.
int run_job_mpi(const RunConfig& config, const JobOptions& options, int* argc, char*** argv,
                const ProcessorFactory& factory = make_clip_processor);

// `clipshard status DIR`: {"state": "finished"|"partial"|"empty", "shards_total", "shards_done",
// "rows_done"} from the run directory's state and parts ("empty": a directory without state.json).
// Creates nothing; throws std::runtime_error naming DIR when it does not exist or is not a
// directory.
nlohmann::json run_status(const std::string& run_dir);

}  // namespace clipshard
