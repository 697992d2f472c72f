// clipshard entry point; everything lives in clipshard_driver (driver/cli.h).
#include "driver/cli.h"
#include "models/weights/process_tuning.h"

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread uses the tuned main arena. Torch's thread count
  // depends on the config and on where the rank sits on its node, known only once MPI is up: the
  // worker sets it when it builds its processor (make_clip_processor,
  // driver/processor_factory.cpp).
  clipshard::tune_process(clipshard::ProcessTuning{});
  return clipshard::run_cli(argc, argv);
}
