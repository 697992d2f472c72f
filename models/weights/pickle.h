// A small, non-executing interpreter for the pickle subset torch.save writes (protocol 2), and the
// matching writer. Internal to models/weights. Only a fixed set of globals is understood
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.*Storage);
// any other global or opcode throws CheckpointError. Nothing from the file is ever executed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace clipshard {

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor
  };
  Kind kind = Kind::kNone;
  bool ordered = false;             // kDict made by collections.OrderedDict
  int64_t i = 0;                    // kBool, kInt
  double f = 0;                     // kFloat
  std::string s;                    // kString, kBytes, kGlobal ("module.name")
  std::vector<PickleValue*> items;  // kTuple, kList
  std::vector<std::pair<PickleValue*, PickleValue*>> dict;  // kDict, in insertion order
  at::Tensor tensor;  // kTensor (the rebuilt tensor), kStorage (1-D, the storage's dtype)
};

// Names a kind for error messages ("dict", "tensor", ...).
const char* pickle_kind_name(PickleValue::Kind kind);

// Owns every value it creates (pointers stay valid while the Unpickler lives; cycles are fine).
class Unpickler {
 public:
  // Turns a persistent id (BINPERSID) into a kStorage value; throws CheckpointError.
  using PersistentLoad = std::function<PickleValue*(Unpickler&, const PickleValue& pid)>;

  Unpickler(const uint8_t* data, size_t size, std::string name, PersistentLoad persistent_load);
  // Runs to STOP and returns the top-level object.
  PickleValue* load();
  PickleValue* make(PickleValue::Kind kind);
  [[noreturn]] void fail(const std::string& what) const;

 private:
  PickleValue* reduce(PickleValue* callable, PickleValue* args);
  PickleValue* rebuild_tensor(PickleValue* args);
  PickleValue* pop();
  std::vector<PickleValue*> pop_to_mark();

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string name_;
  PersistentLoad persistent_load_;
  std::vector<std::unique_ptr<PickleValue>> arena_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
};

// One tensor of a state dict as torch.save pickles it: a view (offset, sizes, strides in elements)
// into storage `storage_key` of `storage_numel` elements of `dtype`.
struct PickledTensor {
  std::string name;
  std::string storage_key;
  c10::ScalarType dtype;
  int64_t storage_numel;
  int64_t offset;
  std::vector<int64_t> sizes, strides;
};

// data.pkl of torch.save(collections.OrderedDict(...)) with protocol 2.
std::string pickle_state_dict(const std::vector<PickledTensor>& tensors);

}  // namespace clipshard
