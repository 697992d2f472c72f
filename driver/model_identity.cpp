#include "driver/model_identity.h"

#include <map>
#include <ostream>
#include <stdexcept>

namespace clipshard {

namespace {

using nlohmann::json;

json to_json(const OperatorModelInfo& m) {
  return {{"operator", m.op},
          {"model_name", m.model_name},
          {"resolved_path", m.resolved_path},
          {"weights_file", m.weights_file},
          {"format", m.format},
          {"fingerprint", m.fingerprint},
          {"device", m.device},
          {"device_type", m.device_type},
          {"precision", m.precision}};
}

OperatorModelInfo from_json(const json& j) {
  OperatorModelInfo m;
  m.op = j.at("operator");
  m.model_name = j.at("model_name");
  m.resolved_path = j.value("resolved_path", std::string());
  m.weights_file = j.value("weights_file", std::string());
  m.format = j.value("format", std::string());
  m.fingerprint = j.at("fingerprint");
  m.device = j.value("device", std::string());
  m.device_type = j.at("device_type");
  m.precision = j.at("precision");
  return m;
}

// What of `now` differs from `before` in the fields that change results, e.g. "device type cpu ->
// cuda, precision fp32 -> fp16"; "" when nothing does.
std::string identity_change(const OperatorModelInfo& before, const OperatorModelInfo& now) {
  std::string out;
  auto add = [&](const char* what, const std::string& a, const std::string& b) {
    if (a == b) return;
    out += (out.empty() ? "" : ", ") + std::string(what) + " " + a + " -> " + b;
  };
  add("device type", before.device_type, now.device_type);
  add("precision", before.precision, now.precision);
  add("weights fingerprint", before.fingerprint, now.fingerprint);
  return out;
}

// "" when every operator agrees; else one clause per differing operator.
std::string compare(const std::vector<OperatorModelInfo>& before,
                    const std::vector<OperatorModelInfo>& now) {
  if (before.size() != now.size())
    return std::to_string(before.size()) + " operators -> " + std::to_string(now.size());
  std::string out;
  for (size_t i = 0; i < now.size(); ++i) {
    const std::string change = identity_change(before[i], now[i]);
    if (!change.empty())
      out += (out.empty() ? "" : "; ") + std::string("pipeline.") + std::to_string(i) + " (" +
             now[i].op + "): " + change;
  }
  return out;
}

std::vector<OperatorModelInfo> recorded_operators(const json& recorded) {
  std::vector<OperatorModelInfo> out;
  if (!recorded.is_object() || !recorded.contains("operators")) return out;
  for (const auto& j : recorded.at("operators")) out.push_back(from_json(j));
  return out;
}

}  // namespace

std::string encode_models(const std::vector<OperatorModelInfo>& models) {
  json j = json::array();
  for (const auto& m : models) j.push_back(to_json(m));
  return j.dump();
}

std::vector<OperatorModelInfo> decode_models(const std::string& text) {
  std::vector<OperatorModelInfo> out;
  try {
    for (const auto& j : json::parse(text)) out.push_back(from_json(j));
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("malformed model report from a worker: ") + e.what());
  }
  return out;
}

ResolvedModels::ResolvedModels(const RunDirectory& dir, bool check)
    : dir_(dir), check_(check), recorded_(read_resolved_state(dir)) {}

void ResolvedModels::accept(int rank, const std::string& text, std::ostream& log) {
  if (!check_) return;
  const std::vector<OperatorModelInfo> now = decode_models(text);
  if (now.empty()) return;
  for (const auto& m : now)
    log << "clipshard: rank " << rank << ": " << m.op << ": " << m.weights_file << " (" << m.format
        << ", fingerprint " << m.fingerprint << ") on " << m.device << ", " << m.precision
        << std::endl;
  const std::string hint =
      "; run it where `device`/`precision` resolve as before (or set them explicitly), or add "
      "--restart to start this directory over (embeddings.h5 is kept as a cache)";
  if (!reports_.empty()) {
    const auto& [first_rank, first] = reports_.front();
    const std::string diff = compare(first, now);
    if (!diff.empty())
      throw std::runtime_error(
          "worker ranks disagree on how the models run (rank " + std::to_string(first_rank) +
          " -> rank " + std::to_string(rank) + ": " + diff +
          "): their shards would not give the same results; give every rank the same hardware "
          "or set \"device\" and \"precision\" explicitly");
  } else if (!recorded_.is_null()) {
    const std::string diff = compare(recorded_operators(recorded_), now);
    if (!diff.empty())
      throw std::runtime_error("the run in " + dir_.root().string() +
                               " was computed with other model numerics than rank " +
                               std::to_string(rank) + " would use now (" + diff + ")" + hint);
  } else {
    json ops = json::array();
    for (auto m : now) {
      json j = to_json(m);
      j.erase("device");  // the rank's own; the type is what the run depends on
      ops.push_back(j);
    }
    recorded_ = {{"operators", ops}};
    record_resolved_state(dir_, recorded_);
  }
  reports_.emplace_back(rank, now);
}

json ResolvedModels::summary(const std::vector<OperatorSpec>& pipeline) const {
  json out = json::array();
  if (!reports_.empty()) {
    const auto& first = reports_.front().second;
    for (size_t i = 0; i < first.size(); ++i) {
      json m = to_json(first[i]);
      m.erase("device_type");
      m["device"] = first[i].device_type;
      json devices = json::object(), files = json::object();
      bool same_file = true;
      for (const auto& [rank, ops] : reports_) {
        devices[std::to_string(rank)] = ops.at(i).device;
        files[std::to_string(rank)] = ops.at(i).weights_file;
        same_file = same_file && ops.at(i).weights_file == first[i].weights_file;
      }
      m["devices"] = devices;
      if (!same_file) m["weights_file"] = files;
      out.push_back(m);
    }
    return out;
  }
  const auto recorded = recorded_operators(recorded_);
  if (!recorded.empty()) {
    for (const auto& r : recorded) {
      json m = to_json(r);
      m.erase("device_type");
      m["device"] = r.device_type;
      out.push_back(m);
    }
    return out;
  }
  for (const auto& op : pipeline)
    out.push_back({{"operator", operator_name(op.kind)}, {"model_name", op.model_name}});
  return out;
}

}  // namespace clipshard
