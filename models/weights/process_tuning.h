// The process-wide settings a clipshard process runs with (malloc behaviour, Torch's intra-op
// thread pool), changed in this one place. Library functions (load_model, ModelBank) never change
// them: the program that owns the process calls tune_process(), once, before its work starts.
#pragma once

namespace clipshard {

struct ProcessTuning {
  // keep_freed_blocks_for_reuse() (host_memory.h): freed blocks up to 32 MiB stay in the heap and
  // threads share the main arena. It only reaches threads that have not allocated yet, so the
  // call that turns it on must come before any thread is started.
  bool keep_freed_blocks = true;
  // > 0: at::set_num_threads(n), Torch's intra-op threads for the whole process; 0 = leave
  // Torch's default (or what an earlier call set).
  int torch_threads = 0;
};

// Applies `tuning` to the process. The allocator part acts on the first call that asks for it and
// does nothing afterwards (host_memory.h); the thread count is set on every call with
// torch_threads > 0. Not thread-safe against concurrent inference: call it before the work starts.
void tune_process(const ProcessTuning& tuning);

}  // namespace clipshard
