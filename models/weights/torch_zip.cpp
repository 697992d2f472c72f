// torch.save archives (PyTorch >= 1.6): a zip with ROOT/data.pkl (the pickled object, tensors as
// persistent ids ('storage', torch.XStorage, key, location, numel)), ROOT/data/<key> (raw
// little-endian storage bytes), ROOT/version and optionally ROOT/byteorder.
#include <ATen/ATen.h>

#include <map>
#include <unordered_map>

#include "models/weights/dtypes.h"
#include "models/weights/host_memory.h"
#include "models/weights/pickle.h"
#include "models/weights/state_dict.h"
#include "models/weights/zip_archive.h"

namespace clipshard {
namespace {

using Kind = PickleValue::Kind;

// The archive root: the folder of the single top-level ".../data.pkl".
std::string archive_root(const ZipReader& zip) {
  for (const auto& e : zip.entries()) {
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && slash > 0 &&
        e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      return e.name.substr(0, slash);
    }
  }
  throw CheckpointError("zip archive " + zip.archive_name() +
                        " has no ROOT/data.pkl entry: not a torch.save archive");
}

const PickleValue* dict_get(const PickleValue& dict, const std::string& key) {
  for (const auto& [k, v] : dict.dict)
    if (k->kind == Kind::kString && k->s == key) return v;
  return nullptr;
}

}  // namespace

StateDict parse_torch_zip(const uint8_t* data, size_t size, const std::string& name,
                          bool verify_crc, const std::shared_ptr<HostBuffer>& owner) {
  ZipReader zip(data, size, name);
  const std::string root = archive_root(zip);
  if (zip.find(root + "/constants.pkl") != nullptr) {
    throw CheckpointError(name + " is a TorchScript archive, not a torch.save state dict: " +
                          "read it with read_torchscript (read_checkpoint detects this)");
  }
  std::vector<uint8_t> scratch;
  if (const ZipEntry* bo = zip.find(root + "/byteorder")) {
    auto b = zip.read(*bo, &scratch, verify_crc);
    const std::string order(reinterpret_cast<const char*>(b.data), b.size);
    if (order != "little") {
      throw CheckpointError(name + ": byteorder '" + order + "' is not supported (little only)");
    }
  }
  const ZipEntry* pkl_entry = zip.find(root + "/data.pkl");
  std::vector<uint8_t> pkl_scratch;
  auto pkl = zip.read(*pkl_entry, &pkl_scratch, verify_crc);

  std::unordered_map<std::string, PickleValue*> storages;
  auto persistent_load = [&](Unpickler& up, const PickleValue& pid) -> PickleValue* {
    const auto& t = pid.items;
    if (pid.kind != Kind::kTuple || t.size() != 5 || t[0]->kind != Kind::kString ||
        t[0]->s != "storage" || t[1]->kind != Kind::kGlobal || t[2]->kind != Kind::kString ||
        t[4]->kind != Kind::kInt) {
      up.fail("persistent id is not ('storage', torch.XStorage, key, location, numel)");
    }
    const auto dtype =
        t[1]->s.rfind("torch.", 0) == 0 ? torch_storage_dtype(t[1]->s.substr(6)) : std::nullopt;
    if (!dtype) up.fail("persistent id names '" + t[1]->s + "', not a storage class");
    const std::string& key = t[2]->s;
    auto cached = storages.find(key);
    if (cached != storages.end()) {
      if (cached->second->tensor.scalar_type() != *dtype) {
        up.fail("storage '" + key + "' is used with two dtypes");
      }
      return cached->second;
    }
    const ZipEntry* entry = zip.find(root + "/data/" + key);
    if (entry == nullptr) up.fail("storage '" + key + "' has no entry " + root + "/data/" + key);
    const int64_t numel = t[4]->i;
    const size_t item = c10::elementSize(*dtype);
    if (numel < 0 || static_cast<uint64_t>(numel) > entry->size / item ||
        static_cast<uint64_t>(numel) * item != entry->size) {
      up.fail("storage '" + key + "' claims " + std::to_string(numel) + " elements of " +
              std::to_string(item) + " bytes but its entry holds " + std::to_string(entry->size) +
              " bytes");
    }
    std::vector<uint8_t> inflated;
    auto bytes = zip.read(*entry, &inflated, verify_crc);
    PickleValue* v = up.make(Kind::kStorage);
    const auto options = at::TensorOptions().dtype(*dtype).device(at::kCPU);
    if (numel == 0) {
      v->tensor = at::empty({0}, options);
    } else if (owner && inflated.empty() && reinterpret_cast<uintptr_t>(bytes.data) % item == 0) {
      // Stored and aligned (torch.save aligns to 64 bytes): a view of the owner's bytes, and the
      // tensors built on it are views too (no copy of the weights).
      v->tensor = host_tensor_view(owner, static_cast<size_t>(bytes.data - data), {numel}, *dtype);
    } else {
      v->tensor = host_empty({numel}, *dtype);
      if (bytes.size > 0) std::memcpy(v->tensor.data_ptr(), bytes.data, bytes.size);
    }
    storages.emplace(key, v);
    return v;
  };

  Unpickler unpickler(pkl.data, pkl.size, name + ":" + pkl_entry->name, persistent_load);
  const PickleValue* top = unpickler.load();
  if (top->kind != Kind::kDict) {
    throw CheckpointError(name + ": the saved object is a " +
                          std::string(pickle_kind_name(top->kind)) +
                          ", not a dict of tensors (a state dict)");
  }
  // Lightning-style checkpoints nest the state dict.
  for (const char* nested : {"state_dict", "model"}) {
    const PickleValue* inner = dict_get(*top, nested);
    if (inner != nullptr && inner->kind == Kind::kDict) {
      top = inner;
      break;
    }
  }
  StateDict out;
  for (const auto& [k, v] : top->dict) {
    if (k->kind != Kind::kString || v->kind != Kind::kTensor) continue;
    out[k->s] = v->tensor;
  }
  if (out.empty()) {
    std::string keys;
    for (const auto& [k, v] : top->dict) {
      if (keys.size() > 200) break;
      if (k->kind == Kind::kString) keys += (keys.empty() ? "" : ", ") + k->s;
    }
    throw CheckpointError(name + ": the saved dict holds no tensors (keys: " + keys + ")");
  }
  return out;
}

StateDict read_torch_zip(const std::filesystem::path& file) {
  const auto buffer = HostBuffer::map_file(file);
  return parse_torch_zip(buffer->data(), buffer->size(), file.string(), /*verify_crc=*/true,
                         buffer);
}

void write_torch_zip(const std::filesystem::path& file, const StateDict& tensors,
                     const std::string& archive_root) {
  TorchZipWriteOptions options;
  options.archive_root = archive_root;
  write_torch_zip(file, tensors, options);
}

void write_torch_zip(const std::filesystem::path& file, const StateDict& tensors,
                     const TorchZipWriteOptions& options) {
  const std::string& root = options.archive_root;
  if (root.empty() || root.find('/') != std::string::npos) {
    throw CheckpointError("write_torch_zip " + file.string() + ": archive root '" + root +
                          "' must be a non-empty name without '/'");
  }
  // One storage per (storage, dtype) of the inputs, so views keep sharing their storage.
  struct Storage {
    std::string key;
    at::Tensor bytes;  // 1-D over the whole storage (a view of the input's memory)
    at::Tensor keep;   // keeps that memory alive
  };
  std::map<std::pair<const void*, c10::ScalarType>, Storage> storages;
  std::vector<Storage*> order;
  std::vector<PickledTensor> pickled;
  for (const auto& [name, input] : tensors) {
    if (!input.defined()) {
      throw CheckpointError("write_torch_zip " + file.string() + ": tensor '" + name +
                            "' is undefined");
    }
    at::Tensor t = input.device().is_cpu() ? input : input.to(at::kCPU);
    const c10::ScalarType dtype = t.scalar_type();
    try {
      torch_storage_class(dtype);
    } catch (const CheckpointError& e) {
      throw CheckpointError("write_torch_zip " + file.string() + ": tensor '" + name +
                            "': " + e.what());
    }
    const size_t item = t.element_size();
    if (t.storage().nbytes() % item != 0) t = t.contiguous().clone();   // shared across dtypes
    const void* id = t.numel() == 0 ? static_cast<const void*>(&input)  // own empty storage
                                    : t.storage().unsafeGetStorageImpl();
    auto [it, fresh] = storages.try_emplace({id, dtype});
    Storage& s = it->second;
    if (fresh) {
      s.key = std::to_string(order.size());
      if (t.numel() == 0) {
        s.bytes = at::empty({0}, at::TensorOptions().dtype(dtype));
      } else {
        const int64_t numel = static_cast<int64_t>(t.storage().nbytes() / item);
        s.bytes = at::from_blob(t.storage().data(), {numel}, at::TensorOptions().dtype(dtype));
        s.keep = t;
      }
      order.push_back(&s);
    }
    PickledTensor p;
    p.name = name;
    p.storage_key = s.key;
    p.dtype = dtype;
    p.storage_numel = s.bytes.numel();
    p.offset = t.numel() == 0 ? 0 : t.storage_offset();
    p.sizes = t.sizes().vec();
    p.strides =
        t.numel() == 0 ? at::empty(t.sizes(), at::kByte).strides().vec() : t.strides().vec();
    pickled.push_back(std::move(p));
  }
  const std::string pkl = pickle_state_dict(pickled);
  ZipWriter zip(file, options.force_zip64);
  zip.add(root + "/data.pkl", pkl.data(), pkl.size());
  zip.add(root + "/byteorder", "little", 6);
  for (const Storage* s : order) {
    zip.add(root + "/data/" + s->key, s->bytes.data_ptr(),
            s->bytes.numel() * s->bytes.element_size());
  }
  zip.add(root + "/version", "3\n", 2);
  zip.finish();
}

}  // namespace clipshard
