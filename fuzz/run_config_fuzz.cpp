// libFuzzer entry point: arbitrary bytes as a config file (JSON with comments, as the CLI reads it)
// through parse_run_config, and a `--set KEY=VALUE` (the input's first line) applied first. The
// only allowed failure is std::invalid_argument (the CLI prints it and exits 1); any other
// exception, a crash or a sanitizer report is a finding. A config that parses must satisfy the
// documented ranges (docs/CONFIG.md). Build and run: scripts/ci-fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "driver/run_config.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace clipshard;
  using fuzz::check;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::string assignment = newline == std::string::npos ? "" : input.substr(0, newline);
  const std::string text = newline == std::string::npos ? input : input.substr(newline + 1);
  nlohmann::json config =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (config.is_discarded()) return 0;
  try {
    if (!assignment.empty()) apply_set(config, assignment);
    const RunConfig c = parse_run_config(config);
    check(!c.inputs.empty() && !c.output_dir.empty() && !c.pipeline.empty());
    check(c.processing.batch_size >= 1 && c.lines_per_shard >= 1 &&
          c.processing.decode.max_pixels >= 1);
    check(c.processing.decode_threads >= 0 && c.torch_threads >= 0 &&
          c.processing.prefetch_batches >= 0);
    check(c.progress_interval_s >= 0 && c.worker_timeout_s >= 1);
    for (const OperatorSpec& op : c.pipeline) {
      check(!op.model_name.empty() && !op.image_key.empty() && !op.text_key.empty());
      if (op.top_fraction) check(*op.top_fraction > 0 && *op.top_fraction <= 1);
    }
    (void)result_fingerprint(c).dump();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
