// make_clip_processor (job.h): device and thread budget for one worker, then the models.
#include "driver/job.h"
#include "models/weights/process_tuning.h"
#include "worker/clip_shard_processor.h"
#include "worker/placement.h"

namespace clipshard {

ClipProcessorOptions worker_processor_options(const RunConfig& config, bool gpu, int cpu_budget) {
  ClipProcessorOptions options = config.processing;
  if (options.decode_threads == 0)
    options.decode_threads = gpu ? std::max(1, cpu_budget - 1) : std::max(1, cpu_budget / 4);
  if (options.cache.write) {
    // The run directory's own cache (from an earlier run there, e.g. before --restart with a new
    // threshold) first, then the configured ones.
    options.cache.reuse.insert(options.cache.reuse.begin(),
                               std::filesystem::path(config.output_dir) / "embeddings.h5");
  } else {
    options.cache.reuse.clear();
  }
  return options;
}

std::unique_ptr<ShardProcessor> make_clip_processor(const RunConfig& config,
                                                    const WorkerPlacement& placement) {
  const HostResources host = HostResources::probe();
  const int budget = worker_cpu_budget(host, placement.ranks_on_node);
  const std::string device = resolve_device(config.device, placement.local_rank, host);
  const bool gpu = device.rfind("cuda", 0) == 0;

  ModelBankOptions bank;
  bank.models_dir = config.models_dir;
  bank.device = device;
  bank.precision = config.precision;
  bank.local_rank = placement.local_rank;
  bank.host = host;
  // On a GPU the CPU only decodes; on the CPU inference takes the cores and decoding, which costs
  // a few percent of inference per image, gets a quarter of them. Torch's thread pool is
  // process-wide: set here, before the models load, where the count is decided (the allocator part
  // was applied first thing in main(); for in-process callers without that main it acts here).
  ProcessTuning tuning;
  tuning.torch_threads = config.torch_threads > 0 ? config.torch_threads : (gpu ? 1 : budget);
  tune_process(tuning);
  auto models = std::make_shared<ModelBank>(config.pipeline, bank);

  return std::make_unique<ClipShardProcessor>(config.pipeline, std::move(models),
                                              worker_processor_options(config, gpu, budget));
}

}  // namespace clipshard
