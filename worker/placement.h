// Where one worker rank runs: its device and its CPU budget, decided in one place from what the
// machine offers (HostResources) and where the rank sits on its node. Pure functions of their
// arguments, so they are unit-tested with made-up machines; HostResources::probe() reads the real
// one.
#pragma once

#include <string>

namespace clipshard {

struct HostResources {
  int cuda_devices = 0;         // visible CUDA devices (0: no usable CUDA)
  int hardware_cpus = 1;        // logical CPUs of the machine
  int affinity_cpus = 1;        // CPUs this process may run on (sched_getaffinity)
  int slurm_cpus_per_task = 0;  // SLURM_CPUS_PER_TASK, 0 when unset or not a positive number

  // The resources of this process and machine, read now.
  static HostResources probe();
};

// The device of an operator or of a whole worker, from its configured value:
// "cpu" -> "cpu"; "cuda" -> "cuda:(local_rank % devices)" (the rank's own GPU, never GPU 0 for all
// ranks of a node; "cuda:0" when no CUDA device is visible, which then fails to load with a clear
// error); "auto" or "" -> the rank's own GPU when there is one, else "cpu"; "cuda:N" -> as given.
std::string resolve_device(const std::string& configured, int local_rank,
                           const HostResources& host);

// CPU threads one worker rank may use: SLURM_CPUS_PER_TASK when Slurm set it; else the CPUs of the
// affinity mask when the launcher bound the process to fewer CPUs than the machine has (the mask is
// then this rank's own); else the machine's CPUs shared evenly by the ranks on the node. At
// least 1.
int worker_cpu_budget(const HostResources& host, int ranks_on_node);

}  // namespace clipshard
