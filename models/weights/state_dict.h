// Checkpoint files -> named tensors. The readers accept what users actually have on disk:
// safetensors, torch.save zip archives (plain dict or OrderedDict state dicts, fp16/fp32, any
// archive root name, .pt/.bin/.ckpt) and TorchScript archives (OpenAI's released .pt files).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace clipshard {

class HostBuffer;  // models/weights/host_memory.h

// Tensor name -> tensor exactly as stored (CPU, stored dtype, contiguous).
using StateDict = std::map<std::string, at::Tensor>;

// A checkpoint that cannot be read: the message names the file and what is wrong with it
// (truncated archive, header lying about sizes, unsupported pickle opcode, ...).
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class CheckpointFormat { kSafetensors, kTorchZip, kTorchScript };

// Detects the format from the file's bytes (not its extension). Throws CheckpointError when it is
// none of the supported formats.
CheckpointFormat detect_checkpoint_format(const std::filesystem::path& file);

// Reads any supported checkpoint, or a sharded one when `file` is a shard index (see
// is_shard_index). Throws CheckpointError. safetensors and torch.save tensors are views of the
// mapped file (HostBuffer::map_file): read-only, copy one before changing it.
StateDict read_checkpoint(const std::filesystem::path& file);

// True when the file name ends with ".index.json" (model.safetensors.index.json,
// pytorch_model.bin.index.json, open_clip_model.safetensors.index.json, ...).
bool is_shard_index(const std::filesystem::path& file);

// A sharded checkpoint as Hugging Face writes it: `index` is a JSON object whose "weight_map" maps
// every tensor name to a shard file in the index's folder; each shard is any format
// read_checkpoint reads. Returns the union, exactly as a single file holding the same tensors.
// Throws CheckpointError naming the index or shard file and the tensor when: the index is not
// valid JSON or has no weight_map; a tensor is listed twice in it; a shard file is missing or
// unreadable; a listed tensor is absent from its shard; a shard holds a tensor the index does not
// assign to it (e.g. the same tensor in two shards); the floating tensors do not all have one
// dtype (Hugging Face writes every shard in the checkpoint's one dtype).
StateDict read_sharded_checkpoint(const std::filesystem::path& index);

StateDict read_safetensors(const std::filesystem::path& file);
// torch.save zip archive whose top-level object is a dict/OrderedDict of tensors (possibly nested
// one level under "state_dict"/"model", as Lightning .ckpt files do).
StateDict read_torch_zip(const std::filesystem::path& file);
// TorchScript archive: parameters and buffers of the module tree, named as in state_dict().
StateDict read_torchscript(const std::filesystem::path& file);

// In-memory parsers behind read_safetensors / read_torch_zip (also the fuzz entry points). `name`
// is only used in error messages. They never trust the bytes: every size, offset, shape and
// opcode is validated and any violation throws CheckpointError. Without `owner` the returned
// tensors own their memory (nothing points into `data` afterwards). With `owner` (the buffer that
// holds `data`: HostBuffer::map_file) tensors stored whole and aligned are views into it that keep
// it alive, read-only when it is a file mapping: no copy of the weights.
StateDict parse_safetensors(const uint8_t* data, size_t size, const std::string& name,
                            const std::shared_ptr<HostBuffer>& owner = nullptr);
// `verify_crc` checks the CRC-32 of every zip entry that is read (the fuzzer turns it off so that
// it can reach the pickle interpreter).
StateDict parse_torch_zip(const uint8_t* data, size_t size, const std::string& name,
                          bool verify_crc = true,
                          const std::shared_ptr<HostBuffer>& owner = nullptr);

// Writers used to create random-weight models in real formats (tests, demo, benchmarks).
void write_safetensors(const std::filesystem::path& file, const StateDict& tensors);
// A torch.save-compatible zip (readable by Python's torch.load and by read_torch_zip) holding an
// OrderedDict state dict; `archive_root` is the top folder name inside the zip.
void write_torch_zip(const std::filesystem::path& file, const StateDict& tensors,
                     const std::string& archive_root = "archive");

struct TorchZipWriteOptions {
  std::string archive_root = "archive";  // top folder inside the zip (torch.save uses the stem)
  bool force_zip64 = false;  // zip64 records even when not needed (tests the zip64 paths; they are
                             // always written when an entry or offset passes 4 GiB)
};
// As above. Tensors that share a storage (views, e.g. slices of one buffer) are written as one
// storage plus (offset, size, stride), exactly as torch.save does; the writers throw
// CheckpointError when the file cannot be written.
void write_torch_zip(const std::filesystem::path& file, const StateDict& tensors,
                     const TorchZipWriteOptions& options);

}  // namespace clipshard
