// libFuzzer entry point: arbitrary bytes into the safetensors parser. Any outcome other than a
// StateDict or a CheckpointError (a crash, a sanitizer report, another exception) is a bug.
// Build: see fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>

#include "models/weights/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clipshard::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const clipshard::CheckpointError&) {
  }
  return 0;
}
