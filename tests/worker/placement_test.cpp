// worker/placement.h on made-up machines: which GPU each rank of a node gets, and its CPU budget.
#include "worker/placement.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace clipshard {
namespace {

HostResources machine(int gpus, int cpus, int affinity, int slurm = 0) {
  HostResources h;
  h.cuda_devices = gpus;
  h.hardware_cpus = cpus;
  h.affinity_cpus = affinity;
  h.slurm_cpus_per_task = slurm;
  return h;
}

TEST(Placement, CudaMeansTheRanksOwnGpu) {
  const HostResources node = machine(4, 64, 64);
  for (int local_rank = 0; local_rank < 8; ++local_rank)
    EXPECT_EQ(resolve_device("cuda", local_rank, node), "cuda:" + std::to_string(local_rank % 4));
}

TEST(Placement, AutoIsTheRanksGpuOrTheCpu) {
  EXPECT_EQ(resolve_device("auto", 3, machine(2, 16, 16)), "cuda:1");
  EXPECT_EQ(resolve_device("", 3, machine(2, 16, 16)), "cuda:1");
  EXPECT_EQ(resolve_device("auto", 3, machine(0, 16, 16)), "cpu");
  EXPECT_EQ(resolve_device("", 0, machine(0, 16, 16)), "cpu");
}

TEST(Placement, ExplicitChoicesStand) {
  const HostResources node = machine(4, 64, 64);
  EXPECT_EQ(resolve_device("cpu", 2, node), "cpu");
  EXPECT_EQ(resolve_device("cuda:3", 0, node), "cuda:3");
  // Asked for CUDA where there is none: a CUDA device that fails to load with a clear error,
  // never a silent fall back to the CPU.
  EXPECT_EQ(resolve_device("cuda", 1, machine(0, 8, 8)), "cuda:0");
}

TEST(Placement, CpuBudget) {
  // Unbound ranks share the machine.
  EXPECT_EQ(worker_cpu_budget(machine(0, 16, 16), 4), 4);
  EXPECT_EQ(worker_cpu_budget(machine(0, 2, 2), 3), 1);
  // A launcher bound this rank to its own CPUs: those are its budget, not a share of them.
  EXPECT_EQ(worker_cpu_budget(machine(0, 64, 8), 8), 8);
  // Slurm's --cpus-per-task wins.
  EXPECT_EQ(worker_cpu_budget(machine(0, 64, 64, 6), 4), 6);
  EXPECT_EQ(worker_cpu_budget(machine(0, 64, 16, 6), 4), 6);
}

TEST(Placement, ProbeReadsThisProcess) {
  const HostResources h = HostResources::probe();
  EXPECT_GE(h.hardware_cpus, 1);
  EXPECT_GE(h.affinity_cpus, 1);
  EXPECT_LE(h.affinity_cpus, h.hardware_cpus);
  EXPECT_GE(h.cuda_devices, 0);
}

TEST(Placement, ProbeReadsSlurmCpusPerTask) {
  ::setenv("SLURM_CPUS_PER_TASK", "5", 1);
  EXPECT_EQ(HostResources::probe().slurm_cpus_per_task, 5);
  for (const char* bad : {"", "0", "-3", "4x", "many"}) {
    ::setenv("SLURM_CPUS_PER_TASK", bad, 1);
    EXPECT_EQ(HostResources::probe().slurm_cpus_per_task, 0) << bad;
  }
  ::unsetenv("SLURM_CPUS_PER_TASK");
  EXPECT_EQ(HostResources::probe().slurm_cpus_per_task, 0);
}

}  // namespace
}  // namespace clipshard
