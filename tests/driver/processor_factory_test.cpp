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

// The configured processing options reach the processor whole; only the worker's own decisions
// are filled in.
TEST(WorkerProcessorOptions, PassesTheConfigThroughAndFillsTheWorkersDecisions) {
  RunConfig c;
  c.output_dir = "run";
  c.processing.batch_size = 5;
  c.processing.prefetch_batches = 7;
  c.processing.source.image_root = "/img";
  c.processing.decode.max_pixels = 1234;
  c.processing.decode.reduced_decode = true;
  c.processing.cache.lossy_fp16 = true;
  c.processing.cache.reuse = {"a.h5", "b.h5"};
  const ClipProcessorOptions cpu = worker_processor_options(c, /*gpu=*/false, /*cpu_budget=*/8);
  EXPECT_EQ(cpu.batch_size, 5);
  EXPECT_EQ(cpu.prefetch_batches, 7);
  EXPECT_EQ(cpu.source.image_root, "/img");
  EXPECT_EQ(cpu.decode.max_pixels, 1234);
  EXPECT_TRUE(cpu.decode.reduced_decode);
  EXPECT_TRUE(cpu.cache.write);
  EXPECT_TRUE(cpu.cache.lossy_fp16);
  EXPECT_EQ(cpu.cache.reuse, (std::vector<std::filesystem::path>{
                                 std::filesystem::path("run") / "embeddings.h5", "a.h5", "b.h5"}));
  // decode_threads 0 = automatic: a quarter of the budget on the CPU, all but one on a GPU.
  EXPECT_EQ(cpu.decode_threads, 2);
  EXPECT_EQ(worker_processor_options(c, /*gpu=*/true, 8).decode_threads, 7);
  EXPECT_EQ(worker_processor_options(c, false, 2).decode_threads, 1);
  EXPECT_EQ(worker_processor_options(c, true, 1).decode_threads, 1);
  c.processing.decode_threads = 3;
  EXPECT_EQ(worker_processor_options(c, false, 8).decode_threads, 3);
  // A disabled cache is neither written nor read, the configured reuse list included.
  c.processing.cache.write = false;
  const ClipProcessorOptions off = worker_processor_options(c, false, 8);
  EXPECT_FALSE(off.cache.write);
  EXPECT_TRUE(off.cache.reuse.empty());
}

}  // namespace
}  // namespace clipshard
