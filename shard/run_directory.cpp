#include "shard/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "shard/atomic_file.h"

namespace clipshard {

RunDirectory::RunDirectory(const std::filesystem::path& root) : root_(root) {
  std::error_code ec;
  std::filesystem::create_directories(parts(), ec);
  if (ec) {
    throw std::runtime_error("cannot create run directory " + parts().string() + ": " +
                             ec.message());
  }
}

ShardPartPaths RunDirectory::shard_parts(int64_t shard_id) const {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%08lld", static_cast<long long>(shard_id));
  const auto base = parts() / name;
  auto with = [&](const char* suffix) {
    auto p = base;
    p += suffix;
    return p;
  };
  return {with(".out.jsonl"), with(".sims.bin"), with(".errors.jsonl"), with(".emb.h5"),
          with(".done.json")};
}

bool RunDirectory::shard_done(int64_t shard_id) const {
  return std::filesystem::exists(shard_parts(shard_id).done);
}

int64_t RunDirectory::remove_stale_temp_files() const {
  auto is_temp = [](const std::string& name) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) return true;
    const auto at = name.rfind(".tmp-");
    return at != std::string::npos && at + 5 < name.size() &&
           name.find_first_not_of("0123456789", at + 5) == std::string::npos;
  };
  int64_t removed = 0;
  for (const auto& dir : {root_, parts()}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (!entry.is_regular_file(ec) || !is_temp(entry.path().filename().string())) continue;
      if (std::filesystem::remove(entry.path(), ec)) ++removed;
    }
  }
  return removed;
}

void RunDirectory::clear_for_restart() const {
  std::error_code ec;
  std::filesystem::remove_all(parts(), ec);
  for (const auto& p : {state(), output(), errors(), summary(), report()})
    std::filesystem::remove(p, ec);
  std::filesystem::create_directories(parts(), ec);
  if (ec) throw std::runtime_error("cannot reset run directory " + root_.string());
}

RunLock::RunLock(const std::filesystem::path& lock_file) {
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("cannot create lock file " + lock_file.string() + ": " +
                             std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("another clipshard run" +
                             (n > 0 ? " (pid " + std::string(holder, n) + ")" : std::string()) +
                             " is using " + lock_file.parent_path().string() +
                             "; wait for it to finish or stop it first");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) {
    (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

namespace {

nlohmann::json read_state(const RunDirectory& dir) {
  try {
    return nlohmann::json::parse(read_file(dir.state()));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("run state " + dir.state().string() + " is corrupt (" + e.what() +
                             "); run again with --restart to start over");
  }
}

}  // namespace

StateCheck check_or_write_state(const RunDirectory& dir, const RunIdentity& identity,
                                nlohmann::json* previous_merge_settings) {
  nlohmann::json state = {{"format", "clipshard-run-state"},
                          {"version", 1},
                          {"config", identity.config},
                          {"manifests", identity.manifests},
                          {"lines_per_shard", identity.lines_per_shard},
                          {"shard_count", identity.shard_count}};
  if (!identity.merge_settings.is_null()) state["merge_settings"] = identity.merge_settings;
  if (!std::filesystem::exists(dir.state())) {
    write_file_atomically(dir.state(), state.dump(2) + "\n");
    if (previous_merge_settings) *previous_merge_settings = identity.merge_settings;
    return StateCheck::kNewRun;
  }
  const nlohmann::json previous = read_state(dir);
  const std::string hint =
      "; run the original command to resume, or add --restart to start this directory over "
      "(finished shards are discarded, embeddings.h5 is kept as a cache)";
  if (previous.value("config", nlohmann::json()) != identity.config) {
    std::string diff;
    const auto patch =
        nlohmann::json::diff(previous.value("config", nlohmann::json()), identity.config);
    for (const auto& op : patch) diff += " " + op.value("path", std::string());
    throw std::runtime_error("the run directory " + dir.root().string() +
                             " was started with a different config (changed:" + diff + ")" + hint);
  }
  if (previous.value("manifests", nlohmann::json()) != identity.manifests ||
      previous.value("lines_per_shard", int64_t{0}) != identity.lines_per_shard) {
    throw std::runtime_error("the input manifests changed since the run in " + dir.root().string() +
                             " started (size, line count or content)" + hint);
  }
  if (previous_merge_settings)
    *previous_merge_settings = previous.value("merge_settings", nlohmann::json());
  return StateCheck::kResume;
}

nlohmann::json read_resolved_state(const RunDirectory& dir) {
  if (!std::filesystem::exists(dir.state())) return nullptr;
  return read_state(dir).value("resolved", nlohmann::json());
}

void record_resolved_state(const RunDirectory& dir, const nlohmann::json& resolved) {
  if (!std::filesystem::exists(dir.state()))
    throw std::runtime_error("cannot record the resolved models: no run state " +
                             dir.state().string());
  nlohmann::json state = read_state(dir);
  state["resolved"] = resolved;
  write_file_atomically(dir.state(), state.dump(2) + "\n");
}

void record_merge_settings(const RunDirectory& dir, const nlohmann::json& merge_settings) {
  if (!std::filesystem::exists(dir.state()))
    throw std::runtime_error("run state " + dir.state().string() + " is missing");
  nlohmann::json state = read_state(dir);
  if (state.value("merge_settings", nlohmann::json()) == merge_settings) return;
  state["merge_settings"] = merge_settings;
  write_file_atomically(dir.state(), state.dump(2) + "\n");
}

}  // namespace clipshard
