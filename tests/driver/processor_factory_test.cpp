// make_clip_processor sets Torch's process-wide thread count (through tune_process) to what the
// worker's placement decides: the configured torch_threads, else on the CPU the worker's CPU
// budget.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "driver/job.h"
#include "worker/placement.h"

namespace clipshard {
namespace {

RunConfig cpu_config(int torch_threads) {
  RunConfig c;
  c.device = "cpu";
  c.torch_threads = torch_threads;
  OperatorSpec op;
  op.kind = OperatorKind::kClipEvaluator;
  op.model_name = (testing::fixtures() / "models" / "tiny" / "hf").string();
  c.pipeline.push_back(op);
  return c;
}

TEST(MakeClipProcessor, SetsTheConfiguredTorchThreads) {
  const int before = at::get_num_threads();
  make_clip_processor(cpu_config(3), {1, 0, 1});
  EXPECT_EQ(at::get_num_threads(), 3);
  at::set_num_threads(before);
}

TEST(MakeClipProcessor, AutomaticThreadsAreTheWorkersCpuBudget) {
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const int ranks_on_node = 2;
  make_clip_processor(cpu_config(0), {1, 0, ranks_on_node});
  EXPECT_EQ(at::get_num_threads(), worker_cpu_budget(HostResources::probe(), ranks_on_node));
  at::set_num_threads(before);
}

}  // namespace
}  // namespace clipshard
