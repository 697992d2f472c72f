// placement.h: device and CPU budget of a worker rank.
#include "worker/placement.h"

#include <sched.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace clipshard {

HostResources HostResources::probe() {
  HostResources host;
  host.cuda_devices =
      torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  host.hardware_cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t mask;
  CPU_ZERO(&mask);
  host.affinity_cpus = sched_getaffinity(0, sizeof(mask), &mask) == 0
                           ? std::max(1, CPU_COUNT(&mask))
                           : host.hardware_cpus;
  if (const char* v = std::getenv("SLURM_CPUS_PER_TASK")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && n > 0 && n < 1 << 20)
      host.slurm_cpus_per_task = static_cast<int>(n);
  }
  return host;
}

std::string resolve_device(const std::string& configured, int local_rank,
                           const HostResources& host) {
  if (configured == "cpu") return "cpu";
  if (configured.rfind("cuda:", 0) == 0) return configured;
  const bool want_gpu = configured == "cuda" ||
                        ((configured == "auto" || configured.empty()) && host.cuda_devices > 0);
  if (!want_gpu) return "cpu";
  return "cuda:" + std::to_string(std::max(0, local_rank) % std::max(1, host.cuda_devices));
}

int worker_cpu_budget(const HostResources& host, int ranks_on_node) {
  if (host.slurm_cpus_per_task > 0) return host.slurm_cpus_per_task;
  if (host.affinity_cpus < host.hardware_cpus) return std::max(1, host.affinity_cpus);
  return std::max(1, host.hardware_cpus / std::max(1, ranks_on_node));
}

}  // namespace clipshard
