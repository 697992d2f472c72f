#include "shard/shard_plan.h"

#include <glob.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>

namespace clipshard {

int64_t ShardPlan::total_lines() const {
  int64_t n = 0;
  for (const auto& m : manifests) n += m.lines;
  return n;
}

std::vector<std::filesystem::path> expand_manifest_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::filesystem::path> result;
  std::set<std::filesystem::path> seen;
  auto add = [&](const std::filesystem::path& p) {
    auto abs = std::filesystem::absolute(p).lexically_normal();
    if (!std::filesystem::is_regular_file(abs))
      throw std::runtime_error("input manifest " + abs.string() + " is not a readable file");
    if (seen.insert(abs).second) result.push_back(abs);
  };
  for (const auto& input : inputs) {
    if (input.find_first_of("*?[") == std::string::npos) {
      if (!std::filesystem::exists(input))
        throw std::runtime_error("input manifest " + input + " does not exist");
      add(input);
      continue;
    }
    glob_t g{};
    const int rc = ::glob(input.c_str(), 0, nullptr, &g);
    std::unique_ptr<glob_t, void (*)(glob_t*)> guard(&g, globfree);
    if (rc != 0 || g.gl_pathc == 0)
      throw std::runtime_error("input pattern " + input + " matches no file");
    std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    std::sort(matches.begin(), matches.end());
    for (const auto& m : matches) add(m);
  }
  return result;
}

ShardPlan plan_shards(const std::vector<std::filesystem::path>& manifests,
                      int64_t lines_per_shard) {
  if (lines_per_shard < 1) throw std::runtime_error("lines_per_shard must be >= 1");
  ShardPlan plan;
  plan.lines_per_shard = lines_per_shard;
  std::vector<char> buffer(1 << 20);
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                        XXH3_freeState);
  for (size_t mi = 0; mi < manifests.size(); ++mi) {
    std::ifstream in(manifests[mi], std::ios::binary);
    if (!in) throw std::runtime_error("cannot open manifest " + manifests[mi].string());
    XXH3_64bits_reset(state.get());
    ManifestInfo info;
    info.path = manifests[mi].string();
    Shard current;
    current.manifest = static_cast<int>(mi);
    auto close_shard = [&](int64_t end_offset) {
      current.byte_end = end_offset;
      current.id = static_cast<int64_t>(plan.shards.size());
      plan.shards.push_back(current);
      current.first_line += current.line_count;
      current.line_count = 0;
      current.byte_begin = end_offset;
    };
    int64_t offset = 0;
    bool line_open = false;  // bytes seen since the last '\n'
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const std::streamsize got = in.gcount();
      if (got <= 0) break;
      XXH3_64bits_update(state.get(), buffer.data(), static_cast<size_t>(got));
      for (std::streamsize i = 0; i < got; ++i) {
        line_open = true;
        if (buffer[i] != '\n') continue;
        line_open = false;
        ++info.lines;
        ++current.line_count;
        if (current.line_count == lines_per_shard) close_shard(offset + i + 1);
      }
      offset += got;
    }
    if (in.bad()) throw std::runtime_error("error reading manifest " + manifests[mi].string());
    if (line_open) {  // last line without newline
      ++info.lines;
      ++current.line_count;
    }
    if (current.line_count > 0) close_shard(offset);
    info.size = offset;
    info.hash = XXH3_64bits_digest(state.get());
    plan.manifests.push_back(std::move(info));
  }
  return plan;
}

nlohmann::json manifest_fingerprints(const ShardPlan& plan) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : plan.manifests) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(m.hash));
    list.push_back({{"path", m.path}, {"size", m.size}, {"lines", m.lines}, {"xxh3", hex}});
  }
  return list;
}

}  // namespace clipshard
