// Small readers for the CLIP test fixtures: .npy float32 arrays, token-id JSONL files, JSON feature
// lists. Header-only so that unit and parity tests can share it.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/test_files.h"

namespace clipshard::testing {

inline nlohmann::json read_json(const std::filesystem::path& p) {
  return nlohmann::json::parse(read_file_bytes(p));
}

// numpy .npy v1.0, '<f4', C order.
inline at::Tensor read_npy_f32(const std::filesystem::path& p) {
  const std::string bytes = read_file_bytes(p);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error(p.string() + " is not .npy");
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  if (header.find("'<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(p.string() + ": expected little-endian float32 in C order");
  const auto open = header.find("'shape': (") + 10, close = header.find(')', open);
  std::vector<int64_t> shape;
  std::string dims = header.substr(open, close - open);
  for (size_t pos = 0; pos < dims.size();) {
    const size_t comma = dims.find(',', pos);
    const std::string tok =
        dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (tok.find_first_not_of(' ') != std::string::npos) shape.push_back(std::stoll(tok));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  auto t = torch::empty(shape, torch::kFloat);
  const size_t data_bytes = t.numel() * sizeof(float);
  if (bytes.size() != 10 + header_len + data_bytes)
    throw std::runtime_error(p.string() + ": size does not match the header");
  std::memcpy(t.data_ptr<float>(), bytes.data() + 10 + header_len, data_bytes);
  return t;
}

// JSONL with {"id": ..., "input_ids": [...]}: id -> ids.
inline std::map<std::string, std::vector<int64_t>> read_token_jsonl(
    const std::filesystem::path& p) {
  std::map<std::string, std::vector<int64_t>> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out[j.at("id").get<std::string>()] = j.at("input_ids").get<std::vector<int64_t>>();
  }
  return out;
}

inline at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  auto t = torch::empty(
      {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows.at(0).size())}, torch::kLong);
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(t[i].data_ptr<int64_t>(), rows[i].data(), rows[i].size() * sizeof(int64_t));
  return t;
}

// JSON list of lists of numbers -> float32 [N, E] (or [E] for a flat list).
inline at::Tensor json_features(const nlohmann::json& j) {
  if (!j.empty() && j[0].is_array()) {
    std::vector<at::Tensor> rows;
    for (const auto& r : j) rows.push_back(json_features(r));
    return torch::stack(rows);
  }
  const auto v = j.get<std::vector<float>>();
  return torch::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())},
                          torch::kFloat)
      .clone();
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace clipshard::testing
