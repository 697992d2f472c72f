#include "models/weights/pickle.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "models/weights/dtypes.h"
#include "models/weights/host_memory.h"
#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

using Kind = PickleValue::Kind;

constexpr int64_t kMaxDims = 64;
// A view may repeat storage elements (stride 0, as expand() makes), but not blow a small storage up
// into an arbitrarily large tensor.
constexpr int64_t kMaxRepeatedNumel = int64_t{1} << 24;

// Opcodes (pickletools names).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinString = 'T',
  kShortBinString = 'U',
  kBinUnicode = 'X',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kEmptyList = ']',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinFloat = 'G',
  kEmptyDict = '}',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kMemoize = 0x94,
  kFrame = 0x95,
  kStackGlobal = 0x93,
};

bool known_global(const std::string& g) {
  if (g == "collections.OrderedDict" || g == "torch._utils._rebuild_tensor_v2" ||
      g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
    return true;
  }
  return g.rfind("torch.", 0) == 0 && torch_storage_dtype(g.substr(6)).has_value();
}

}  // namespace

const char* pickle_kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
  }
  return "?";
}

Unpickler::Unpickler(const uint8_t* data, size_t size, std::string name,
                     PersistentLoad persistent_load)
    : data_(data),
      size_(size),
      name_(std::move(name)),
      persistent_load_(std::move(persistent_load)) {}

void Unpickler::fail(const std::string& what) const {
  throw CheckpointError("pickle " + name_ + " at byte " + std::to_string(pos_) + ": " + what);
}

PickleValue* Unpickler::make(Kind kind) {
  arena_.push_back(std::make_unique<PickleValue>());
  arena_.back()->kind = kind;
  return arena_.back().get();
}

PickleValue* Unpickler::pop() {
  const size_t base = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= base) fail("stack underflow");
  PickleValue* v = stack_.back();
  stack_.pop_back();
  return v;
}

std::vector<PickleValue*> Unpickler::pop_to_mark() {
  if (marks_.empty()) fail("no MARK on the stack");
  const size_t base = marks_.back();
  marks_.pop_back();
  std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(base), stack_.end());
  stack_.resize(base);
  return items;
}

PickleValue* Unpickler::load() {
  auto need = [&](size_t n) {
    if (size_ - pos_ < n) fail("truncated (needs " + std::to_string(n) + " more bytes)");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  };
  auto le = [&](size_t n) {
    const uint8_t* p = need(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
  };
  auto top = [&]() -> PickleValue* {
    const size_t base = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() <= base) fail("stack underflow");
    return stack_.back();
  };
  auto push_string = [&](Kind kind, uint64_t n) {
    if (n > size_ - pos_) fail("string runs past the end");
    PickleValue* v = make(kind);
    const uint8_t* p = need(n);
    v->s.assign(reinterpret_cast<const char*>(p), n);
    stack_.push_back(v);
  };
  auto push_int = [&](int64_t x) {
    PickleValue* v = make(Kind::kInt);
    v->i = x;
    stack_.push_back(v);
  };
  auto read_line = [&]() {
    std::string line;
    while (true) {
      const char c = static_cast<char>(*need(1));
      if (c == '\n') return line;
      if (line.size() > 256) fail("GLOBAL name too long");
      line.push_back(c);
    }
  };
  auto push_global = [&](const std::string& module, const std::string& name) {
    const std::string g = module + "." + name;
    if (!known_global(g)) {
      fail("unsupported global '" + g + "' (only tensors and (Ordered)dicts of them are read; " +
           "nothing in a checkpoint is executed)");
    }
    PickleValue* v = make(Kind::kGlobal);
    v->s = g;
    stack_.push_back(v);
  };
  auto tuple_of = [&](std::vector<PickleValue*> items) {
    PickleValue* v = make(Kind::kTuple);
    v->items = std::move(items);
    stack_.push_back(v);
  };

  while (true) {
    const uint8_t op = *need(1);
    switch (op) {
      case kProto:
        need(1);
        break;
      case kFrame:
        need(8);
        break;
      case kStop: {
        PickleValue* result = pop();
        return result;
      }
      case kMark:
        marks_.push_back(stack_.size());
        break;
      case kPop:
        if (!marks_.empty() && stack_.size() == marks_.back()) {
          marks_.pop_back();
        } else {
          pop();
        }
        break;
      case kPopMark:
        pop_to_mark();
        break;
      case kDup:
        stack_.push_back(top());
        break;
      case kNone:
        stack_.push_back(make(Kind::kNone));
        break;
      case kNewTrue:
      case kNewFalse: {
        PickleValue* v = make(Kind::kBool);
        v->i = op == kNewTrue;
        stack_.push_back(v);
        break;
      }
      case kBinInt:
        push_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))));
        break;
      case kBinInt1:
        push_int(static_cast<int64_t>(le(1)));
        break;
      case kBinInt2:
        push_int(static_cast<int64_t>(le(2)));
        break;
      case kLong1: {
        const size_t n = *need(1);
        if (n > 8) fail("LONG1 integer wider than 64 bits");
        uint64_t v = n ? le(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
        push_int(static_cast<int64_t>(v));
        break;
      }
      case kBinFloat: {
        const uint8_t* p = need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
        PickleValue* v = make(Kind::kFloat);
        std::memcpy(&v->f, &bits, 8);
        stack_.push_back(v);
        break;
      }
      case kBinUnicode:
        push_string(Kind::kString, le(4));
        break;
      case kShortBinUnicode:
        push_string(Kind::kString, le(1));
        break;
      case kBinUnicode8:
        push_string(Kind::kString, le(8));
        break;
      case kBinString:
        push_string(Kind::kString, le(4));
        break;
      case kShortBinString:
        push_string(Kind::kString, le(1));
        break;
      case kBinBytes:
        push_string(Kind::kBytes, le(4));
        break;
      case kShortBinBytes:
        push_string(Kind::kBytes, le(1));
        break;
      case kEmptyTuple:
        tuple_of({});
        break;
      case kEmptyList:
        stack_.push_back(make(Kind::kList));
        break;
      case kEmptyDict:
        stack_.push_back(make(Kind::kDict));
        break;
      case kTuple:
        tuple_of(pop_to_mark());
        break;
      case kTuple1: {
        PickleValue* a = pop();
        tuple_of({a});
        break;
      }
      case kTuple2: {
        PickleValue* b = pop();
        PickleValue* a = pop();
        tuple_of({a, b});
        break;
      }
      case kTuple3: {
        PickleValue* c = pop();
        PickleValue* b = pop();
        PickleValue* a = pop();
        tuple_of({a, b, c});
        break;
      }
      case kAppend: {
        PickleValue* v = pop();
        PickleValue* list = top();
        if (list->kind != Kind::kList)
          fail("APPEND to a " + std::string(pickle_kind_name(list->kind)));
        list->items.push_back(v);
        break;
      }
      case kAppends: {
        std::vector<PickleValue*> items = pop_to_mark();
        PickleValue* list = top();
        if (list->kind != Kind::kList)
          fail("APPENDS to a " + std::string(pickle_kind_name(list->kind)));
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case kSetItem: {
        PickleValue* v = pop();
        PickleValue* k = pop();
        PickleValue* dict = top();
        if (dict->kind != Kind::kDict)
          fail("SETITEM on a " + std::string(pickle_kind_name(dict->kind)));
        dict->dict.emplace_back(k, v);
        break;
      }
      case kSetItems: {
        std::vector<PickleValue*> items = pop_to_mark();
        PickleValue* dict = top();
        if (dict->kind != Kind::kDict)
          fail("SETITEMS on a " + std::string(pickle_kind_name(dict->kind)));
        if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
        for (size_t i = 0; i < items.size(); i += 2)
          dict->dict.emplace_back(items[i], items[i + 1]);
        break;
      }
      case kGlobal: {
        const std::string module = read_line();
        const std::string name = read_line();
        push_global(module, name);
        break;
      }
      case kStackGlobal: {
        PickleValue* name = pop();
        PickleValue* module = pop();
        if (name->kind != Kind::kString || module->kind != Kind::kString) {
          fail("STACK_GLOBAL needs two strings");
        }
        push_global(module->s, name->s);
        break;
      }
      case kBinPersId: {
        PickleValue* pid = pop();
        stack_.push_back(persistent_load_(*this, *pid));
        break;
      }
      case kReduce: {
        PickleValue* args = pop();
        PickleValue* callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case kBuild: {
        PickleValue* state = pop();
        (void)state;
        PickleValue* obj = top();
        // OrderedDict's state is its attributes (`_metadata` of Module.state_dict()): not needed.
        if (obj->kind != Kind::kDict && obj->kind != Kind::kTensor) {
          fail(std::string("BUILD on a ") + pickle_kind_name(obj->kind));
        }
        break;
      }
      case kBinPut:
        memo_[le(1)] = top();
        break;
      case kLongBinPut:
        memo_[le(4)] = top();
        break;
      case kMemoize:
        memo_[memo_.size()] = top();
        break;
      case kBinGet:
      case kLongBinGet: {
        const uint64_t idx = le(op == kBinGet ? 1 : 4);
        auto it = memo_.find(idx);
        if (it == memo_.end()) fail("memo entry " + std::to_string(idx) + " is not set");
        stack_.push_back(it->second);
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        --pos_;
        fail(std::string("unsupported pickle opcode ") + hex);
      }
    }
  }
}

PickleValue* Unpickler::reduce(PickleValue* callable, PickleValue* args) {
  if (callable->kind != Kind::kGlobal) {
    fail(std::string("REDUCE calls a ") + pickle_kind_name(callable->kind));
  }
  if (args->kind != Kind::kTuple) fail("REDUCE arguments are not a tuple");
  const std::string& g = callable->s;
  if (g == "collections.OrderedDict") {
    PickleValue* d = make(Kind::kDict);
    d->ordered = true;
    if (args->items.size() > 1) fail("OrderedDict() with more than one argument");
    if (args->items.size() == 1) {
      PickleValue* pairs = args->items[0];
      if (pairs->kind != Kind::kList && pairs->kind != Kind::kTuple) {
        fail("OrderedDict() of a " + std::string(pickle_kind_name(pairs->kind)));
      }
      for (PickleValue* kv : pairs->items) {
        if (kv->kind != Kind::kTuple || kv->items.size() != 2)
          fail("OrderedDict() item not a pair");
        d->dict.emplace_back(kv->items[0], kv->items[1]);
      }
    }
    return d;
  }
  if (g == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
  if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
    if (args->items.empty() || args->items[0]->kind != Kind::kTensor) {
      fail(g + " without a tensor");
    }
    return args->items[0];
  }
  fail("cannot call '" + g + "'");
}

PickleValue* Unpickler::rebuild_tensor(PickleValue* args) {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  const auto& a = args->items;
  if (a.size() < 4 || a.size() > 7)
    fail("_rebuild_tensor_v2 with " + std::to_string(a.size()) + " arguments");
  if (a[0]->kind != Kind::kStorage) fail("_rebuild_tensor_v2 without a storage");
  if (a[1]->kind != Kind::kInt || a[1]->i < 0) fail("_rebuild_tensor_v2 with a bad offset");
  if (a[2]->kind != Kind::kTuple || a[3]->kind != Kind::kTuple ||
      a[2]->items.size() != a[3]->items.size()) {
    fail("_rebuild_tensor_v2 with bad size/stride tuples");
  }
  const at::Tensor& storage = a[0]->tensor;
  const int64_t ndim = static_cast<int64_t>(a[2]->items.size());
  if (ndim > kMaxDims) fail("tensor with " + std::to_string(ndim) + " dimensions");
  std::vector<int64_t> sizes, strides;
  int64_t numel = 1;
  bool overflow = false;
  for (int64_t d = 0; d < ndim; ++d) {
    const PickleValue* s = a[2]->items[d];
    const PickleValue* st = a[3]->items[d];
    if (s->kind != Kind::kInt || st->kind != Kind::kInt || s->i < 0 || st->i < 0) {
      fail("tensor size/stride entries must be non-negative integers");
    }
    sizes.push_back(s->i);
    strides.push_back(st->i);
    overflow = overflow || __builtin_mul_overflow(numel, s->i, &numel);
  }
  if (overflow) fail("tensor size overflows");
  const int64_t offset = a[1]->i;
  const auto options = at::TensorOptions().dtype(storage.scalar_type()).device(at::kCPU);
  PickleValue* v = make(Kind::kTensor);
  if (numel == 0) {
    v->tensor = at::empty(sizes, options);
    return v;
  }
  int64_t last = offset;  // index of the last element the view touches
  for (int64_t d = 0; d < ndim; ++d) {
    int64_t span = 0;
    overflow = overflow || __builtin_mul_overflow(sizes[d] - 1, strides[d], &span) ||
               __builtin_add_overflow(last, span, &last);
  }
  if (overflow || last >= storage.numel()) {
    fail("tensor view (offset " + std::to_string(offset) + ") reaches past its storage of " +
         std::to_string(storage.numel()) + " elements");
  }
  if (numel > std::max(storage.numel(), kMaxRepeatedNumel)) {
    fail("tensor view of " + std::to_string(numel) + " elements repeats a storage of " +
         std::to_string(storage.numel()));
  }
  try {
    // Storages own their memory (parse_torch_zip), so a contiguous view can share it; any other
    // layout is copied out contiguous, as the StateDict contract asks.
    at::Tensor view = storage.as_strided(sizes, strides, offset);
    if (view.is_contiguous()) {
      v->tensor = view;
    } else {
      v->tensor = host_empty(sizes, storage.scalar_type());
      v->tensor.copy_(view);
    }
  } catch (const std::exception& e) {  // c10::Error, std::bad_alloc
    fail(std::string("cannot build tensor: ") + e.what());
  }
  return v;
}

namespace {

class PickleWriter {
 public:
  std::string out;
  void op(uint8_t o) { out.push_back(static_cast<char>(o)); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op(kBinInt1), le(v, 1);
    } else if (v >= 0 && v < 65536) {
      op(kBinInt2), le(v, 2);
    } else if (v >= std::numeric_limits<int32_t>::min() &&
               v <= std::numeric_limits<int32_t>::max()) {
      op(kBinInt), le(static_cast<uint64_t>(v), 4);
    } else {
      op(kLong1), le(8, 1), le(static_cast<uint64_t>(v), 8);
    }
  }
  void str(const std::string& s) {
    op(kBinUnicode);
    le(s.size(), 4);
    out += s;
  }
  void global(const std::string& module, const std::string& name) {
    op(kGlobal);
    out += module + "\n" + name + "\n";
  }
  void int_tuple(const std::vector<int64_t>& v) {
    if (v.empty()) return op(kEmptyTuple);
    op(kMark);
    for (int64_t x : v) integer(x);
    op(kTuple);
  }
};

}  // namespace

std::string pickle_state_dict(const std::vector<PickledTensor>& tensors) {
  PickleWriter w;
  w.op(kProto), w.le(2, 1);
  w.global("collections", "OrderedDict");
  w.op(kEmptyTuple), w.op(kReduce);
  w.op(kMark);
  for (const auto& t : tensors) {
    w.str(t.name);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op(kMark);
    w.op(kMark);  // persistent id ('storage', torch.XStorage, key, 'cpu', numel)
    w.str("storage");
    w.global("torch", torch_storage_class(t.dtype));
    w.str(t.storage_key);
    w.str("cpu");
    w.integer(t.storage_numel);
    w.op(kTuple);
    w.op(kBinPersId);
    w.integer(t.offset);
    w.int_tuple(t.sizes);
    w.int_tuple(t.strides);
    w.op(kNewFalse);                         // requires_grad
    w.global("collections", "OrderedDict");  // backward_hooks
    w.op(kEmptyTuple), w.op(kReduce);
    w.op(kTuple);
    w.op(kReduce);
  }
  w.op(kSetItems);
  w.op(kStop);
  return w.out;
}

}  // namespace clipshard
