#include "shard/shard_plan.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "shard/tar_reader.h"

namespace clipshard {

int64_t ShardPlan::total_lines() const {
  int64_t n = 0;
  for (const auto& m : manifests) n += m.lines;
  return n;
}

namespace {

// Cuts one tar into shards of `lines_per_shard` samples with a header-only scan.
void plan_tar(const InputFile& input, int index, int64_t lines_per_shard, ShardPlan* plan) {
  TarSampleScanner scanner(input.path);
  ManifestInfo info;
  info.path = input.path.string();
  info.kind = InputKind::kTar;
  info.url = input.given;
  Shard current;
  current.manifest = index;
  TarSample sample;
  while (scanner.next(&sample)) {
    if (current.line_count == 0) {
      current.first_line = sample.index;
      current.byte_begin = sample.begin;
    }
    ++current.line_count;
    current.byte_end = sample.end;
    ++info.lines;
    if (current.line_count == lines_per_shard) {
      current.id = static_cast<int64_t>(plan->shards.size());
      plan->shards.push_back(current);
      current.line_count = 0;
    }
  }
  if (current.line_count > 0) {
    current.id = static_cast<int64_t>(plan->shards.size());
    plan->shards.push_back(current);
  }
  info.size = scanner.file_size();
  info.hash = scanner.header_hash();
  struct stat st {};
  if (::stat(input.path.c_str(), &st) != 0)
    throw std::runtime_error("cannot stat tar " + input.path.string());
  info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  plan->manifests.push_back(std::move(info));
}

}  // namespace

ShardPlan plan_shards(const std::vector<std::filesystem::path>& inputs, int64_t lines_per_shard) {
  std::vector<InputFile> files;
  for (const auto& p : inputs) files.push_back({p, p.string(), input_kind(p)});
  return plan_shards(files, lines_per_shard);
}

ShardPlan plan_shards(const std::vector<InputFile>& inputs, int64_t lines_per_shard) {
  if (lines_per_shard < 1) throw std::runtime_error("lines_per_shard must be >= 1");
  ShardPlan plan;
  plan.lines_per_shard = lines_per_shard;
  std::vector<char> buffer(1 << 20);
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                        XXH3_freeState);
  for (size_t mi = 0; mi < inputs.size(); ++mi) {
    if (inputs[mi].kind == InputKind::kTar) {
      plan_tar(inputs[mi], static_cast<int>(mi), lines_per_shard, &plan);
      continue;
    }
    const std::filesystem::path& manifest = inputs[mi].path;
    std::ifstream in(manifest, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open manifest " + manifest.string());
    XXH3_64bits_reset(state.get());
    ManifestInfo info;
    info.path = manifest.string();
    info.url = inputs[mi].given;
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
    if (in.bad()) throw std::runtime_error("error reading manifest " + manifest.string());
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
    nlohmann::json entry = {{"path", m.path}, {"size", m.size}, {"lines", m.lines}, {"xxh3", hex}};
    if (m.kind == InputKind::kTar) {
      entry["kind"] = "tar";
      entry["url"] = m.url;
      entry["mtime_ns"] = m.mtime_ns;
    }
    list.push_back(std::move(entry));
  }
  return list;
}

}  // namespace clipshard
