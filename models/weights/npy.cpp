#include "models/weights/npy.h"

#include <ATen/ATen.h>

#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "models/weights/host_memory.h"
#include "models/weights/state_dict.h"

namespace clipshard {

at::Tensor read_npy(const std::filesystem::path& file) {
  const auto mapped = HostBuffer::map_file(file);
  const uint8_t* d = mapped->data();
  const size_t size = mapped->size();
  auto fail = [&](const std::string& what) -> void {
    throw CheckpointError("npy file " + file.string() + ": " + what);
  };
  if (size < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) fail("no \\x93NUMPY magic");
  const int major = d[6];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = d[8] | (d[9] << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail("truncated header");
    header_len = d[8] | (d[9] << 8) | (d[10] << 16) | (static_cast<size_t>(d[11]) << 24);
    header_start = 12;
  } else {
    fail("unsupported format version " + std::to_string(major));
  }
  if (header_len > size - header_start) fail("header runs past the end of the file");
  const std::string header(reinterpret_cast<const char*>(d + header_start), header_len);

  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) fail("no descr");
  const std::string descr = m[1];
  c10::ScalarType dtype;
  if (descr == "<f4") {
    dtype = at::kFloat;
  } else if (descr == "<i8") {
    dtype = at::kLong;
  } else {
    fail("dtype '" + descr + "' is not supported (little-endian float32 '<f4' or int64 '<i8')");
  }
  if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))"))) {
    fail("no fortran_order");
  }
  if (m[1] == "True") fail("Fortran order is not supported (save a C-contiguous array)");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) fail("no shape");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  const std::regex num(R"(\d+)");
  uint64_t numel = 1;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator();
       ++it) {
    const std::string s = it->str();
    if (s.size() > 15) fail("dimension " + s + " is too large");
    shape.push_back(std::stoll(s));
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape.back()), &numel)) {
      fail("shape overflows");
    }
  }
  const size_t data_start = header_start + header_len;
  const uint64_t item = c10::elementSize(dtype);
  if (numel > (size - data_start) / item || numel * item != size - data_start) {
    fail("data is " + std::to_string(size - data_start) + " bytes but the shape needs " +
         std::to_string(numel) + " x " + std::to_string(item));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (numel > 0) std::memcpy(t.data_ptr(), d + data_start, numel * item);
  return t;
}

}  // namespace clipshard
