// TorchScript archives (torch.jit.save; OpenAI's released .pt files): loaded with torch::jit::load,
// the weights are the parameters and buffers of the module tree.
#include <torch/script.h>

#include "models/weights/host_memory.h"
#include "models/weights/state_dict.h"
#include "models/weights/zip_archive.h"

namespace clipshard {

StateDict read_torchscript(const std::filesystem::path& file) {
  {
    // Our own zip reader checks the archive first: a truncated or corrupted file gets a clear
    // CheckpointError instead of whatever the TorchScript loader makes of it.
    const auto mapped = HostBuffer::map_file(file, /*populate=*/false);
    ZipReader zip(mapped->data(), mapped->size(), file.string());
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(file.string(), torch::kCPU);
  } catch (const c10::Error& e) {
    throw CheckpointError("cannot load TorchScript archive " + file.string() + ": " +
                          e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw CheckpointError("cannot load TorchScript archive " + file.string() + ": " + e.what());
  }
  StateDict out;
  // Recursive names ("visual.conv1.weight") are the names of Module.state_dict().
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    out[p.name] = p.value.detach().contiguous();
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    out[b.name] = b.value.detach().contiguous();
  }
  if (out.empty()) {
    throw CheckpointError("TorchScript archive " + file.string() + " has no parameters or buffers");
  }
  return out;
}

}  // namespace clipshard
