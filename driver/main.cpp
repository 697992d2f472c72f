// clipshard entry point; everything lives in clipshard_driver (driver/cli.h).
#include "driver/cli.h"
#include "models/weights/host_memory.h"

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread uses the tuned main arena.
  clipshard::keep_freed_blocks_for_reuse();
  return clipshard::run_cli(argc, argv);
}
