// The run directory (docs/FORMATS.md): output.jsonl, errors.jsonl, summary.json,
// embeddings.h5 for the user; state.json, run.lock and parts/ for the tool itself.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace clipshard {

// The files one shard leaves in parts/. A shard is finished exactly when its `done` file exists:
// it is renamed into place last, after every other part of the shard is complete.
struct ShardPartPaths {
  std::filesystem::path output;      // rows after the operators (JSONL, one line per object row)
  std::filesystem::path sims;        // float32 per object row and filter (binary, little-endian)
  std::filesystem::path errors;      // error records (JSONL)
  std::filesystem::path embeddings;  // HDF5 cache part (may be absent)
  std::filesystem::path done;        // shard statistics (JSON); its presence commits the shard
};

class RunDirectory {
 public:
  // Creates `root` and root/parts if needed. Throws std::runtime_error when it cannot.
  explicit RunDirectory(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path output() const { return root_ / "output.jsonl"; }
  std::filesystem::path errors() const { return root_ / "errors.jsonl"; }
  std::filesystem::path summary() const { return root_ / "summary.json"; }
  std::filesystem::path report() const { return root_ / "report.html"; }
  std::filesystem::path embeddings() const { return root_ / "embeddings.h5"; }
  std::filesystem::path state() const { return root_ / "state.json"; }
  std::filesystem::path lock() const { return root_ / "run.lock"; }
  std::filesystem::path parts() const { return root_ / "parts"; }
  ShardPartPaths shard_parts(int64_t shard_id) const;

  bool shard_done(int64_t shard_id) const;

  // Deletes the temporary files that a killed process leaves behind (AtomicFile's "*.tmp-PID",
  // the HDF5 writers' "*.tmp") in the root and parts/. Call with the run lock held, before any
  // work starts. Returns how many were removed.
  int64_t remove_stale_temp_files() const;

  // Removes parts/, state.json and the merged outputs (not embeddings.h5, which a restarted run
  // reuses as a cache). Used by --restart.
  void clear_for_restart() const;

 private:
  std::filesystem::path root_;
};

// An exclusive advisory lock (flock) on run.lock, held for the object's lifetime; the kernel drops
// it when the process dies, so a killed run never leaves a stale lock. Throws std::runtime_error
// ("another clipshard run (pid N) is using DIR") when another process holds it.
class RunLock {
 public:
  explicit RunLock(const std::filesystem::path& lock_file);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// What identifies a run: the fingerprint of the config settings that change what the shards
// compute and the manifests' fingerprints (shard_plan.h). `merge_settings` (the settings that only
// change the merge, such as a filter's threshold) is recorded beside it but may differ on a rerun.
struct RunIdentity {
  nlohmann::json config;     // canonical config (the settings that change the parts)
  nlohmann::json manifests;  // manifest_fingerprints(plan)
  int64_t lines_per_shard = 0;
  int64_t shard_count = 0;
  nlohmann::json merge_settings;  // settings applied by the merge only (null = none)
};

enum class StateCheck { kNewRun, kResume };

// Compares `identity` with root/state.json. No state: writes it, kNewRun. Same config and
// manifests: kResume, whatever the merge settings (state.json is not rewritten). Different:
// throws std::runtime_error that says what changed and that --restart starts over. When
// `previous_merge_settings` is given it receives state.json's "merge_settings" on kResume (null
// when absent) and identity.merge_settings on kNewRun.
StateCheck check_or_write_state(const RunDirectory& dir, const RunIdentity& identity,
                                nlohmann::json* previous_merge_settings = nullptr);

// Records in root/state.json (rewritten atomically) the merge settings of the merge that has
// just been committed, so that the next rerun knows what output.jsonl was filtered with. Throws
// std::runtime_error when state.json is missing or corrupt.
void record_merge_settings(const RunDirectory& dir, const nlohmann::json& merge_settings);

// state.json's "resolved" record: what the run's workers resolved the config to (device type,
// precision and weights per operator; driver/model_identity.h), which a resume must resolve to
// again. null when none is recorded (or there is no state.json). Throws std::runtime_error naming
// the file when it is corrupt.
nlohmann::json read_resolved_state(const RunDirectory& dir);

// Adds or replaces state.json's "resolved" record, atomically; the rest of the state is kept.
// Throws std::runtime_error when state.json is missing or corrupt.
void record_resolved_state(const RunDirectory& dir, const nlohmann::json& resolved);

}  // namespace clipshard
