// The pipeline config (configs/*.json, docs/CONFIG.md): JSON mapped 1:1 onto RunConfig. Unknown
// keys, wrong types and out-of-range values are errors that name the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shard/config_fields.h"
#include "worker/clip_processor_options.h"
#include "worker/operator_spec.h"

namespace clipshard {

struct StepFilesConfig {
  std::string cache_path = "./cache";                    // DataFlow-MM FileStorage cache_path
  std::string file_name_prefix = "dataflow_cache_step";  // {cache_path}/{prefix}_step{N}.jsonl
};

// A run's settings. The components' settings are their own options structs, embedded whole (their
// member initialisers are the defaults; each lists its config keys once, next to it), so the
// driver passes them on instead of copying fields. The config keys stay flat (docs/CONFIG.md):
// `batch_size`, `image_root`, `max_image_pixels` ... sit at the top level beside the run's own.
struct RunConfig {
  std::vector<std::string> inputs;  // "input": manifests and .tar shards (paths, globs, braces)
  std::string output_dir;           // the run directory (required)
  std::string models_dir;           // where model names are resolved (plus the HF cache)
  std::string device = "auto";      // auto | cpu | cuda (a worker uses GPU local_rank % n)
  std::string precision = "auto";   // auto | fp32 | fp16 | bf16; operators may override it
  int64_t lines_per_shard = 512;    // manifest lines per shard (unit of scheduling/resume)
  int torch_threads = 0;            // per worker; 0 = automatic (make_clip_processor)
  // What a worker's ClipShardProcessor runs with (batch_size, decode_threads, prefetch_batches,
  // source: image_root..., decode: max_image_pixels..., cache: embedding_cache.*).
  // make_clip_processor fills in what each worker decides (automatic threads, the run
  // directory's own embeddings.h5).
  ClipProcessorOptions processing;
  bool has_step_files = false;
  StepFilesConfig step_files;          // write DataFlow-MM style per-step files too
  std::string webdataset_output;       // "" = off; else a folder for filtered copies of the tars
  double progress_interval_s = 10.0;   // progress line period on stderr (0 = off)
  double worker_timeout_s = 1800.0;    // a busy worker silent this long aborts the job
  std::vector<OperatorSpec> pipeline;  // at least one step
};

// Every key of a run config (the run's own, those of `processing` beside them, the objects
// `embedding_cache` and `step_files`, `comment`): what parse_run_config and result_fingerprint
// follow, and what tests compare docs/CONFIG.md's defaults with.
const ConfigFields<RunConfig>& run_config_fields();

// Parses a config object: every key read by run_config_fields, then the checks across keys
// (input, output_dir and pipeline are required; fp16 on an explicit cpu device). Throws
// std::invalid_argument naming the offending key.
RunConfig parse_run_config(const nlohmann::json& config);

// Applies one `--set KEY=VALUE` to a config object before parsing: KEY is a dotted path
// ("batch_size", "embedding_cache.enabled", "pipeline.0.threshold"); VALUE is parsed as JSON when
// it is valid JSON, else taken as a string. Throws std::invalid_argument for a malformed
// assignment.
void apply_set(nlohmann::json& config, const std::string& assignment);

// The settings that change what the shards compute (for the run state: a resumed run must use
// the same ones): the entries of the fields of run_config_fields that are in it. Filter settings
// are not among them (merge_settings). Existing run directories compare it byte for byte: an
// entry may only be added where its absence reads as before (precision: only when not "auto").
nlohmann::json result_fingerprint(const RunConfig& config);

// The settings that only change the merge's keep/drop decision (a filter's threshold and
// top_fraction), one object per pipeline step (to_merge_settings_json). A rerun on a run directory
// that differs from its state.json only in these re-merges the stored similarities.
nlohmann::json merge_settings(const RunConfig& config);

}  // namespace clipshard
