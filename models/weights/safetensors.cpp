// safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
// the raw little-endian data; offsets are relative to the end of the header.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "models/weights/dtypes.h"
#include "models/weights/host_memory.h"
#include "models/weights/state_dict.h"

namespace clipshard {
namespace {

// The official library refuses headers above 100 MB; so do we (a lying length must not make us
// parse gigabytes of tensor data as JSON).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw CheckpointError("safetensors file " + name + ": " + what);
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t json_u64(const nlohmann::json& v, const std::string& name, const std::string& what) {
  if (!v.is_number_unsigned()) fail(name, what + " is not a non-negative integer");
  return v.get<uint64_t>();
}

struct Entry {
  std::string key;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

}  // namespace

StateDict parse_safetensors(const uint8_t* data, size_t size, const std::string& name,
                            const std::shared_ptr<HostBuffer>& owner) {
  if (size < 8) fail(name, "only " + std::to_string(size) + " bytes, no 8-byte header length");
  const uint64_t header_len = read_u64_le(data);
  if (header_len > size - 8) {
    fail(name, "header length " + std::to_string(header_len) + " is larger than the file (" +
                   std::to_string(size) + " bytes): truncated or not a safetensors file");
  }
  if (header_len > kMaxHeaderBytes) {
    fail(name, "header length " + std::to_string(header_len) + " exceeds 100 MB");
  }
  const uint8_t* header_begin = data + 8;
  const uint8_t* header_end = header_begin + header_len;
  if (header_len == 0 || header_begin[0] != '{') fail(name, "header is not a JSON object");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_end);
  } catch (const nlohmann::json::exception& e) {
    fail(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(name, "header is not a JSON object");

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* payload = header_end;
  std::vector<Entry> entries;
  for (const auto& [key, info] : header.items()) {
    if (key == "__metadata__") continue;
    const std::string where = "tensor '" + key + "'";
    if (!info.is_object()) fail(name, where + " is not a JSON object");
    auto dtype_it = info.find("dtype");
    auto shape_it = info.find("shape");
    auto offsets_it = info.find("data_offsets");
    if (dtype_it == info.end() || !dtype_it->is_string()) fail(name, where + " has no dtype");
    if (shape_it == info.end() || !shape_it->is_array()) fail(name, where + " has no shape");
    if (offsets_it == info.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      fail(name, where + " has no data_offsets [begin, end]");
    }
    Entry e;
    e.key = key;
    const std::string dtype_name = dtype_it->get<std::string>();
    auto dtype = safetensors_dtype(dtype_name);
    if (!dtype) fail(name, where + " has unsupported dtype " + dtype_name);
    e.dtype = *dtype;
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *shape_it) {
      uint64_t dim = json_u64(d, name, where + " shape entry");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, c10::elementSize(e.dtype), &nbytes);
    if (overflow) fail(name, where + " has a shape whose size overflows");
    e.begin = json_u64((*offsets_it)[0], name, where + " data_offsets begin");
    e.end = json_u64((*offsets_it)[1], name, where + " data_offsets end");
    if (e.begin > e.end || e.end > data_size) {
      fail(name, where + " data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] are outside the data section (" +
                     std::to_string(data_size) + " bytes)");
    }
    if (e.end - e.begin != nbytes) {
      fail(name, where + " has " + std::to_string(e.end - e.begin) + " bytes of data but " +
                     dtype_name + " with this shape needs " + std::to_string(nbytes));
    }
    entries.push_back(std::move(e));
  }

  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      fail(name, "tensors '" + by_offset[i - 1]->key + "' and '" + by_offset[i]->key +
                     "' overlap in the data section");
    }
  }

  StateDict out;
  for (const auto& e : entries) {
    const auto offset = static_cast<size_t>(payload + e.begin - data);
    if (owner && e.end > e.begin && offset % c10::elementSize(e.dtype) == 0) {
      out.emplace(e.key, host_tensor_view(owner, offset, e.shape, e.dtype));
      continue;
    }
    at::Tensor t = host_empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), payload + e.begin, e.end - e.begin);
    out.emplace(e.key, std::move(t));
  }
  return out;
}

StateDict read_safetensors(const std::filesystem::path& file) {
  const auto buffer = HostBuffer::map_file(file);
  return parse_safetensors(buffer->data(), buffer->size(), file.string(), buffer);
}

void write_safetensors(const std::filesystem::path& file, const StateDict& tensors) {
  // Data in the official library's order (larger element size first, then by name) so that every
  // tensor is aligned to its element size; the JSON keys come out sorted.
  std::vector<std::pair<std::string, at::Tensor>> order;
  for (const auto& [key, t] : tensors) {
    if (!t.defined())
      throw CheckpointError("write_safetensors " + file.string() + ": tensor '" + key +
                            "' is undefined");
    order.emplace_back(key, t.to(at::kCPU).contiguous());
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& [key, t] : order) {
    const uint64_t nbytes = t.numel() * t.element_size();
    std::string dtype;
    try {
      dtype = safetensors_dtype_name(t.scalar_type());
    } catch (const CheckpointError& e) {
      throw CheckpointError("write_safetensors " + file.string() + ": tensor '" + key +
                            "': " + e.what());
    }
    header[key] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));

  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [key, t] : order) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  out.close();
  if (!out) {
    throw CheckpointError("cannot write safetensors file " + file.string() +
                          " (check that the directory exists and has free space)");
  }
}

}  // namespace clipshard
