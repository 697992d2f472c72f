#include "models/weights/process_tuning.h"

#include <ATen/Parallel.h>

#include "models/weights/host_memory.h"

namespace clipshard {

void tune_process(const ProcessTuning& tuning) {
  if (tuning.keep_freed_blocks) keep_freed_blocks_for_reuse();
  if (tuning.torch_threads > 0) at::set_num_threads(tuning.torch_threads);
}

}  // namespace clipshard
