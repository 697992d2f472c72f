// Format detection from the file's bytes and the read_checkpoint dispatcher.
#include <cstring>

#include "models/weights/host_memory.h"
#include "models/weights/state_dict.h"
#include "models/weights/zip_archive.h"

namespace clipshard {
namespace {

// torch.save before PyTorch 1.6 (and _use_new_zipfile_serialization=False): a pickle stream that
// starts with PROTO 2 and the LONG1 magic number 0x1950a86a20f9469cfc6c.
constexpr uint8_t kLegacyTorchMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c,
                                         0xfc, 0x9c, 0x46, 0xf9, 0x20};

constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

bool looks_like_safetensors(const uint8_t* data, size_t size) {
  if (size < 10) return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  // A plausible header length and a JSON object right after it. A length beyond the end of the
  // file still counts (a truncated safetensors file gets the parser's precise error).
  return n >= 2 && n <= kMaxSafetensorsHeader && data[8] == '{';
}

CheckpointFormat detect(const uint8_t* data, size_t size, const std::string& name) {
  if (size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0) {
    ZipReader zip(data, size, name);  // throws for a truncated / corrupted archive
    for (const auto& e : zip.entries()) {
      const auto slash = e.name.find('/');
      if (slash == std::string::npos) continue;
      const std::string rest = e.name.substr(slash + 1);
      if (rest == "constants.pkl" || rest.rfind("code/", 0) == 0) {
        return CheckpointFormat::kTorchScript;
      }
    }
    return CheckpointFormat::kTorchZip;
  }
  if (looks_like_safetensors(data, size)) return CheckpointFormat::kSafetensors;
  if (size >= sizeof kLegacyTorchMagic &&
      std::memcmp(data, kLegacyTorchMagic, sizeof kLegacyTorchMagic) == 0) {
    throw CheckpointError("not a checkpoint this tool reads: " + name +
                          " uses the legacy (pre-1.6) torch.save format; re-save it with a "
                          "current PyTorch (torch.save(torch.load(f), f)) or as safetensors");
  }
  throw CheckpointError("not a checkpoint: " + name + " (" + std::to_string(size) +
                        " bytes) is neither safetensors, a torch.save zip archive nor a "
                        "TorchScript archive");
}

}  // namespace

CheckpointFormat detect_checkpoint_format(const std::filesystem::path& file) {
  const auto mapped = HostBuffer::map_file(file, /*populate=*/false);  // reads the header only
  return detect(mapped->data(), mapped->size(), file.string());
}

StateDict read_checkpoint(const std::filesystem::path& file) {
  if (is_shard_index(file)) return read_sharded_checkpoint(file);
  switch (detect_checkpoint_format(file)) {
    case CheckpointFormat::kSafetensors:
      return read_safetensors(file);
    case CheckpointFormat::kTorchZip:
      return read_torch_zip(file);
    case CheckpointFormat::kTorchScript:
      return read_torchscript(file);
  }
  throw CheckpointError("unreachable: unknown checkpoint format for " + file.string());
}

}  // namespace clipshard
