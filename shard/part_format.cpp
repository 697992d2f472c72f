#include "shard/part_format.h"

#include <cstring>
#include <stdexcept>

namespace clipshard {

ShardPartWriter::ShardPartWriter(const RunDirectory& dir, int64_t shard_id)
    : paths_(dir.shard_parts(shard_id)),
      shard_id_(shard_id),
      output_(paths_.output),
      sims_(paths_.sims),
      errors_(paths_.errors) {}

void ShardPartWriter::add_row(const std::string& json_line, const std::vector<float>& sims) {
  output_.write(json_line);
  output_.write("\n", 1);
  sims_.write(sims.data(), sims.size() * sizeof(float));
}

void ShardPartWriter::add_error(const ErrorRecord& record) {
  errors_.write(error_record_json(record).dump(-1, ' ', false, Json::error_handler_t::replace));
  errors_.write("\n", 1);
}

void ShardPartWriter::commit(const ShardStats& shard_stats, int rank) {
  output_.commit();
  sims_.commit();
  errors_.commit();
  nlohmann::json stats = shard_stats_to_json(shard_stats);
  stats["shard"] = shard_id_;
  stats["rank"] = rank;
  write_file_atomically(paths_.done, stats.dump(1) + "\n");
}

nlohmann::ordered_json error_record_json(const ErrorRecord& record) {
  nlohmann::ordered_json j;
  j["manifest"] = record.manifest;
  j["line"] = record.line;
  if (record.from_tar) j["sample"] = record.sample;
  j["reason"] = std::string(row_error_name(record.status.code));
  j["message"] = record.status.message;
  if (!record.op.empty()) j["operator"] = record.op;
  if (!record.key.empty()) j["key"] = record.key;
  return j;
}

std::string dump_row(const Json& row) {
  // replace: a caption that was valid UTF-8 on input stays so; this only guards internal strings.
  return row.dump(-1, ' ', false, Json::error_handler_t::replace);
}

ShardStats read_done_part(const std::filesystem::path& path, int* rank) {
  const auto done = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  if (done.is_discarded())
    throw std::runtime_error("shard part " + path.string() + " is not valid JSON");
  const auto r = done.find("rank");
  *rank = r != done.end() && r->is_number_integer() ? r->get<int>() : -1;
  return shard_stats_from_json(done, path.string());
}

std::vector<float> read_sims_part(const std::filesystem::path& path, size_t columns) {
  std::vector<float> sims;
  if (columns == 0) return sims;
  const std::string bytes = read_file(path);
  if (bytes.size() % (4 * columns) != 0)
    throw std::runtime_error("shard part " + path.string() + " has a truncated sims record");
  sims.resize(bytes.size() / 4);
  std::memcpy(sims.data(), bytes.data(), bytes.size());
  return sims;
}

}  // namespace clipshard
