#include "shard/row_keys.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace clipshard {

namespace {

constexpr char kMagic[8] = {'C', 'S', 'R', 'K', 'E', 'Y', 'S', '1'};
// A header larger than this is damage, not a pipeline (it holds a few strings per operator).
constexpr uint32_t kMaxHeader = 1u << 20;

void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::filesystem::path row_keys_path(const std::filesystem::path& run_dir, int64_t shard_id) {
  char name[40];
  std::snprintf(name, sizeof name, "shard-%08lld.rowkeys.bin", static_cast<long long>(shard_id));
  return run_dir / "parts" / name;
}

RowKeysWriter::RowKeysWriter(const std::filesystem::path& path,
                             const std::vector<RowKeyTables>& operators)
    : file_(path), operators_(operators.size()) {
  nlohmann::json header = {{"operators", nlohmann::json::array()}};
  for (const auto& t : operators)
    header["operators"].push_back(
        {{"image", {{"model_id", t.image_model_id}, {"pipeline", t.image_pipeline}}},
         {"text", {{"model_id", t.text_model_id}, {"pipeline", t.text_pipeline}}}});
  const std::string text = header.dump();
  unsigned char length[4];
  for (int i = 0; i < 4; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  file_.write(kMagic, sizeof kMagic);
  file_.write(length, sizeof length);
  file_.write(text);
}

void RowKeysWriter::add_row(const std::vector<RowKeys>& keys) {
  if (keys.size() != operators_)
    throw std::invalid_argument("RowKeysWriter::add_row: " + std::to_string(keys.size()) +
                                " operators' keys for a pipeline of " + std::to_string(operators_));
  std::vector<unsigned char> record(keys.size() * 32);
  for (size_t o = 0; o < keys.size(); ++o)
    for (size_t k = 0; k < 4; ++k) put_u64(&record[o * 32 + k * 8], keys[o][k]);
  file_.write(record.data(), record.size());
}

void RowKeysWriter::commit() { file_.commit(); }

RowKeysReader::RowKeysReader(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_)
    throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  char magic[8];
  unsigned char length[4];
  if (std::fread(magic, 1, 8, file_) != 8 || std::memcmp(magic, kMagic, 8) != 0 ||
      std::fread(length, 1, 4, file_) != 4) {
    std::fclose(file_);
    file_ = nullptr;
    throw std::runtime_error(path.string() + " is not a clipshard row keys part (damaged?)");
  }
  const uint32_t n =
      length[0] | (length[1] << 8) | (length[2] << 16) | (static_cast<uint32_t>(length[3]) << 24);
  std::string text(n <= kMaxHeader ? n : 0, '\0');
  nlohmann::json header;
  if (n <= kMaxHeader && std::fread(text.data(), 1, n, file_) == n)
    header = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("operators") || !header["operators"].is_array()) {
    std::fclose(file_);
    file_ = nullptr;
    throw std::runtime_error(path.string() + ": damaged row keys header");
  }
  for (const auto& op : header["operators"]) {
    const auto field = [&](const char* kind, const char* name) -> std::string {
      if (!op.is_object() || !op.contains(kind) || !op[kind].is_object() ||
          !op[kind].contains(name) || !op[kind][name].is_string()) {
        std::fclose(file_);
        file_ = nullptr;
        throw std::runtime_error(path.string() + ": damaged row keys header (no " + kind + "." +
                                 name + ")");
      }
      return op[kind][name].get<std::string>();
    };
    operators_.push_back({field("image", "model_id"), field("image", "pipeline"),
                          field("text", "model_id"), field("text", "pipeline")});
  }
}

RowKeysReader::~RowKeysReader() {
  if (file_) std::fclose(file_);
}

bool RowKeysReader::next(std::vector<RowKeys>* keys) {
  if (operators_.empty()) return false;  // no operator, nothing per row
  std::vector<unsigned char> record(operators_.size() * 32);
  const size_t got = std::fread(record.data(), 1, record.size(), file_);
  if (got == 0) {
    if (std::ferror(file_))
      throw std::runtime_error("cannot read " + path_.string() + ": " + std::strerror(errno));
    return false;
  }
  if (got != record.size())
    throw std::runtime_error(path_.string() + " ends inside a record (truncated)");
  keys->resize(operators_.size());
  for (size_t o = 0; o < operators_.size(); ++o)
    for (size_t k = 0; k < 4; ++k) (*keys)[o][k] = get_u64(&record[o * 32 + k * 8]);
  return true;
}

}  // namespace clipshard
