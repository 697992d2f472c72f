// libFuzzer entry point: arbitrary bytes into the torch.save reader (zip central directory, local
// headers, inflate, pickle interpreter, tensor views). CRC checks are off so that mutated pickles
// reach the interpreter. Any outcome other than a StateDict or a CheckpointError is a bug.
// Build: see fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>

#include "models/weights/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clipshard::parse_torch_zip(data, size, "fuzz.pt", /*verify_crc=*/false);
  } catch (const clipshard::CheckpointError&) {
  }
  return 0;
}
