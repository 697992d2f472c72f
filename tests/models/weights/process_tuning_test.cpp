// tune_process: the one place clipshard changes process-wide state (Torch's thread count, malloc).
#include "models/weights/process_tuning.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace clipshard {
namespace {

TEST(TuneProcess, SetsTorchThreadsWhenAsked) {
  const int before = at::get_num_threads();
  ProcessTuning tuning;
  tuning.keep_freed_blocks = false;
  tuning.torch_threads = 1;
  tune_process(tuning);
  EXPECT_EQ(at::get_num_threads(), 1);
  tuning.torch_threads = 2;
  tune_process(tuning);  // every call with a count sets it (a worker built after main's call)
  EXPECT_EQ(at::get_num_threads(), 2);
  tuning.torch_threads = 0;  // 0 leaves what is there
  tune_process(tuning);
  EXPECT_EQ(at::get_num_threads(), 2);
  at::set_num_threads(before);
}

TEST(TuneProcess, DefaultsKeepFreedBlocksAndLeaveThreads) {
  const ProcessTuning defaults;
  EXPECT_TRUE(defaults.keep_freed_blocks);
  EXPECT_EQ(defaults.torch_threads, 0);
#if defined(__GLIBC__)
  const char* keep = std::getenv("CLIPSHARD_DEFAULT_MALLOC");
  if (keep != nullptr && std::strcmp(keep, "1") == 0)
    GTEST_SKIP() << "CLIPSHARD_DEFAULT_MALLOC=1 turns the allocator tuning off";
  const int threads = at::get_num_threads();
  tune_process(defaults);
  EXPECT_EQ(at::get_num_threads(), threads);
  // A 16 MiB block comes from the heap, not from its own mmap: glibc's default threshold is 128 KiB
  // (raised at most to the size of a freed mmapped block, none of which this test has made).
  const int mapped_before = mallinfo2().hblks;
  std::vector<char> block(16 << 20, 1);
  EXPECT_EQ(mallinfo2().hblks, mapped_before);
  EXPECT_EQ(block[12345], 1);
#else
  GTEST_SKIP() << "the allocator tuning is glibc's";
#endif
}

}  // namespace
}  // namespace clipshard
