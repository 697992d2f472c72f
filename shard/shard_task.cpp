#include "shard/shard_task.h"

#include <nlohmann/json.hpp>

namespace clipshard {

ShardTask make_shard_task(const ShardPlan& plan, int64_t id) {
  ShardTask task;
  task.shard = plan.shards.at(id);
  const ManifestInfo& input = plan.manifests.at(task.shard.manifest);
  task.manifest = input.path;
  task.kind = input.kind;
  task.url = input.url;
  for (int i = 0; i < task.shard.manifest; ++i) task.global_base += plan.manifests[i].lines;
  return task;
}

std::string encode_shard_task(const ShardTask& t) {
  return nlohmann::json{{"id", t.shard.id},
                        {"manifest_index", t.shard.manifest},
                        {"manifest", t.manifest},
                        {"first_line", t.shard.first_line},
                        {"line_count", t.shard.line_count},
                        {"byte_begin", t.shard.byte_begin},
                        {"byte_end", t.shard.byte_end},
                        {"global_base", t.global_base},
                        {"tar", t.kind == InputKind::kTar},
                        {"url", t.url}}
      .dump();
}

ShardTask decode_shard_task(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  ShardTask t;
  t.shard.id = j.at("id");
  t.shard.manifest = j.at("manifest_index");
  t.shard.first_line = j.at("first_line");
  t.shard.line_count = j.at("line_count");
  t.shard.byte_begin = j.at("byte_begin");
  t.shard.byte_end = j.at("byte_end");
  t.manifest = j.at("manifest");
  t.global_base = j.at("global_base");
  t.kind = j.at("tar").get<bool>() ? InputKind::kTar : InputKind::kManifest;
  t.url = j.at("url");
  return t;
}

}  // namespace clipshard
