// The pipeline config (configs/*.json, docs/CONFIG.md): JSON mapped 1:1 onto RunConfig. Unknown
// keys, wrong types and out-of-range values are errors that name the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/operator_spec.h"

namespace clipshard {

struct EmbeddingCacheConfig {
  bool enabled = true;      // write embeddings.h5 and reuse it (and `reuse`) in later runs
  bool lossy_fp16 = false;  // store fp16 instead of fp32 (reused scores then differ by ~1e-3)
  std::vector<std::string> reuse;  // more embeddings.h5 files to take embeddings from
};

struct StepFilesConfig {
  std::string cache_path;        // DataFlow-MM FileStorage cache_path
  std::string file_name_prefix;  // files are {cache_path}/{file_name_prefix}_step{N}.jsonl
};

struct RunConfig {
  std::vector<std::string> inputs;  // "input": manifests and .tar shards (paths, globs, braces)
  std::string output_dir;           // the run directory (required)
  std::string image_root;           // "" = relative image paths are relative to the manifest
  bool enforce_image_root = false;  // refuse absolute paths and paths leaving image_root
  std::string models_dir;           // where model names are resolved (plus the HF cache)
  std::string device = "auto";      // auto | cpu | cuda (a worker uses GPU local_rank % n)
  std::string precision = "auto";   // auto | fp32 | fp16 | bf16; operators may override it
  int batch_size = 32;              // images/captions per inference batch
  int64_t lines_per_shard = 512;    // manifest lines per shard (unit of scheduling/resume)
  int decode_threads = 0;           // per worker; 0 = automatic (cores, device)
  int torch_threads = 0;            // per worker; 0 = automatic
  int prefetch_batches = 2;         // batches decoded ahead of inference
  int64_t max_image_pixels = 2 * 89478485;  // larger images are refused (decompression bombs)
  bool reduced_decode = false;              // JPEG DCT scaling for large images (not parity mode)
  EmbeddingCacheConfig embedding_cache;
  bool has_step_files = false;
  StepFilesConfig step_files;          // write DataFlow-MM style per-step files too
  std::string webdataset_output;       // "" = off; else a folder for filtered copies of the tars
  double progress_interval_s = 10.0;   // progress line period on stderr (0 = off)
  double worker_timeout_s = 1800.0;    // a busy worker silent this long aborts the job
  std::vector<OperatorSpec> pipeline;  // at least one step
};

// Parses a config object. Throws std::invalid_argument naming the offending key.
RunConfig parse_run_config(const nlohmann::json& config);

// Applies one `--set KEY=VALUE` to a config object before parsing: KEY is a dotted path
// ("batch_size", "embedding_cache.enabled", "pipeline.0.threshold"); VALUE is parsed as JSON when
// it is valid JSON, else taken as a string. Throws std::invalid_argument for a malformed
// assignment.
void apply_set(nlohmann::json& config, const std::string& assignment);

// The settings that change what the shards compute (for the run state: a resumed run must use
// the same ones). Filter settings are not among them (merge_settings).
nlohmann::json result_fingerprint(const RunConfig& config);

// The settings that only change the merge's keep/drop decision (a filter's threshold and
// top_fraction), one object per pipeline step (to_merge_settings_json). A rerun on a run directory
// that differs from its state.json only in these re-merges the stored similarities.
nlohmann::json merge_settings(const RunConfig& config);

}  // namespace clipshard
