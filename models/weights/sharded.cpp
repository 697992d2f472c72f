// Sharded checkpoints: a Hugging Face index JSON (weight_map: tensor -> shard file) and its shards.
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "models/weights/state_dict.h"

namespace clipshard {
namespace fs = std::filesystem;

bool is_shard_index(const fs::path& file) {
  const std::string name = file.filename().string();
  const std::string suffix = ".index.json";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

StateDict read_sharded_checkpoint(const fs::path& index) {
  const std::string where = index.string();
  std::ifstream in(index, std::ios::binary);
  if (!in) throw CheckpointError("cannot read shard index " + where);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  // nlohmann keeps the last of duplicate keys silently: a parser callback sees every key, so a
  // tensor listed twice in weight_map is caught (the two entries may name different shards).
  std::string top_key, duplicate;
  std::set<std::string> listed;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key) {
      if (depth == 1) top_key = parsed.get<std::string>();
      if (depth == 2 && top_key == "weight_map" &&
          !listed.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text, callback);
  } catch (const std::exception& e) {
    throw CheckpointError("shard index " + where + " is not valid JSON: " + e.what());
  }
  if (!duplicate.empty())
    throw CheckpointError("shard index " + where + " lists tensor '" + duplicate +
                          "' twice in weight_map");
  if (!doc.is_object() || !doc.contains("weight_map") || !doc["weight_map"].is_object() ||
      doc["weight_map"].empty())
    throw CheckpointError("shard index " + where +
                          " has no \"weight_map\" object (tensor name -> shard file)");

  // shard file -> tensors the index assigns to it, in file name order.
  std::map<std::string, std::set<std::string>> shards;
  for (auto it = doc["weight_map"].begin(); it != doc["weight_map"].end(); ++it) {
    if (!it.value().is_string() || it.value().get<std::string>().empty())
      throw CheckpointError("shard index " + where + ": weight_map entry of tensor '" + it.key() +
                            "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (fs::path(shard).is_absolute() || shard.find("..") != std::string::npos)
      throw CheckpointError("shard index " + where + ": shard '" + shard + "' of tensor '" +
                            it.key() + "' is not a file name inside the index's folder");
    shards[shard].insert(it.key());
  }

  StateDict out;
  std::string ref_tensor, ref_shard;
  at::ScalarType ref_dtype = at::kFloat;
  for (const auto& [shard, names] : shards) {
    const fs::path file = index.parent_path() / shard;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec))
      throw CheckpointError("shard index " + where + ": shard file " + file.string() +
                            " (holding tensor '" + *names.begin() + "') does not exist");
    StateDict part = read_checkpoint(file);
    for (const auto& name : names)
      if (!part.count(name))
        throw CheckpointError("shard index " + where + " puts tensor '" + name + "' in " +
                              file.string() + ", but that shard does not hold it");
    for (auto& [name, tensor] : part) {
      if (!names.count(name)) {
        auto assigned = doc["weight_map"].find(name);
        throw CheckpointError(
            "shard " + file.string() + " holds tensor '" + name + "', which " + where +
            (assigned == doc["weight_map"].end()
                 ? std::string(" does not list")
                 : " assigns to " + assigned->get<std::string>() + " (a tensor in two shards)"));
      }
      if (at::isFloatingType(tensor.scalar_type())) {
        if (ref_tensor.empty()) {
          ref_tensor = name;
          ref_shard = file.string();
          ref_dtype = tensor.scalar_type();
        } else if (tensor.scalar_type() != ref_dtype) {
          throw CheckpointError("tensor '" + name + "' in shard " + file.string() + " is " +
                                c10::toString(tensor.scalar_type()) + " but '" + ref_tensor +
                                "' in " + ref_shard + " is " + c10::toString(ref_dtype) +
                                ": the shards of one checkpoint must have one dtype");
        }
      }
      out.emplace(name, std::move(tensor));
    }
  }
  return out;
}

}  // namespace clipshard
