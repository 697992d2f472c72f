// The command line (docs/CONFIG.md):
//   clipshard run CONFIG.json [--set KEY=VALUE]... [--restart]
//   clipshard run --op OPERATOR --model MODEL --input MANIFEST... --output-dir DIR
//                 [--param NAME=VALUE]... [--batch-size N] [--device auto|cpu|cuda] [--restart]
//   clipshard status RUN_DIR
//   clipshard export RUN_DIR --to DIR [--op N] [--fp16] [--image-only|--text-only]
//                    [--rows-per-file N] [--force]
//   clipshard make-model --preset NAME --format hf|openai|longclip --out PATH [--seed N] [--fp16]
//   clipshard version
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace clipshard {

// Runs the command; returns the process exit status (driver/signals.h).
int run_cli(int argc, char** argv);

// The config object `clipshard run --op ...` stands for. Throws std::invalid_argument for a
// malformed --param.
nlohmann::json config_from_flags(const std::string& op, const std::string& model,
                                 const std::vector<std::string>& inputs,
                                 const std::string& output_dir,
                                 const std::vector<std::string>& params);

}  // namespace clipshard
