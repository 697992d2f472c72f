#include "driver/cli.h"

#include <ATen/Version.h>
#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include "driver/export.h"
#include "driver/job.h"
#include "driver/mpi_transport.h"
#include "driver/run_config.h"
#include "driver/signals.h"
#include "models/clip/random_model.h"
#include "shard/atomic_file.h"

namespace clipshard {

namespace {

#ifndef CLIPSHARD_VERSION
#define CLIPSHARD_VERSION "unknown"
#endif

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

// The BLAS that LibTorch's CPU matmuls will call: OpenBLAS's own build string when the loaded BLAS
// is OpenBLAS (found with dlsym, so that no OpenBLAS header or link is needed), the library file
// that provides sgemm_, and LibTorch's compile-time view otherwise. This is the first thing to
// check when CPU throughput is ~40x too low (the reference BLAS instead of OpenBLAS).
std::string blas_description() {
  std::string out;
  using GetConfig = const char* (*)();
  if (auto* get = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    out = get();  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Haswell MAX_THREADS=64"
  }
  if (void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info{};
    if (dladdr(sgemm, &info) != 0 && info.dli_fname != nullptr) {
      out += (out.empty() ? "sgemm_ from " : " (") + std::string(info.dli_fname) +
             (out.rfind("sgemm_", 0) == 0 ? "" : ")");
    }
  }
  if (out.empty()) {
    // at::show_config() lists the build settings, BLAS_INFO among them.
    std::istringstream config(at::show_config());
    for (std::string line; std::getline(config, line);) {
      if (line.find("BLAS_INFO") != std::string::npos) out = first_line(line);
    }
    if (out.empty()) out = "unknown (at::show_config() names none)";
  }
  return out;
}

// `clipshard --version`: what a bug report needs to know about this binary.
int cmd_version() {
  std::cout << "clipshard " << CLIPSHARD_VERSION << "\n";
  std::cout << "LibTorch " << TORCH_VERSION << "\n";
  const bool cuda = torch::cuda::is_available();
  std::cout << "CUDA: "
            << (cuda ? "available, " + std::to_string(torch::cuda::device_count()) + " device(s)"
                     : std::string("not available (CPU only)"))
            << "\n";
  std::cout << "MPI: " << mpi_library_version() << "\n";
  std::cout << "BLAS: " << blas_description() << std::endl;
  return kExitOk;
}

nlohmann::json load_config_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception&) {
    throw std::invalid_argument("cannot read config file " + path);
  }
  auto config = nlohmann::json::parse(text, nullptr, false, /*ignore_comments=*/true);
  if (config.is_discarded()) {
    try {
      (void)!nlohmann::json::parse(text, nullptr, true, true).is_null();
    } catch (const nlohmann::json::parse_error& e) {
      throw std::invalid_argument("config file " + path + " is not valid JSON: " + e.what());
    }
  }
  return config;
}

int cmd_make_model(const std::string& preset, const std::string& format, const std::string& out,
                   uint64_t seed, bool fp16) {
  RandomModelFormat f;
  if (format == "hf")
    f = RandomModelFormat::kHuggingFaceDir;
  else if (format == "openai")
    f = RandomModelFormat::kOpenAIStateDict;
  else if (format == "longclip")
    f = RandomModelFormat::kLongClipCheckpoint;
  else
    throw std::invalid_argument("--format must be hf, openai or longclip");
  write_random_model(preset, f, seed, out, fp16 ? at::kHalf : at::kFloat);
  std::cout << "wrote random-weight " << preset << " model (" << format << ", seed " << seed
            << ") to " << out << " — its scores are meaningless; it exists for demos and tests"
            << std::endl;
  return kExitOk;
}

}  // namespace

nlohmann::json config_from_flags(const std::string& op, const std::string& model,
                                 const std::vector<std::string>& inputs,
                                 const std::string& output_dir,
                                 const std::vector<std::string>& params) {
  nlohmann::json step = {{"operator", op}};
  if (!model.empty()) step["model_name"] = model;
  for (const auto& p : params) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--param expects NAME=VALUE, got \"" + p + "\"");
    const std::string value = p.substr(eq + 1);
    auto parsed = nlohmann::json::parse(value, nullptr, false);
    step[p.substr(0, eq)] =
        parsed.is_discarded() || parsed.is_string() ? nlohmann::json(value) : parsed;
  }
  return {{"input", inputs}, {"output_dir", output_dir}, {"pipeline", {step}}};
}

int run_cli(int argc, char** argv) {
  CLI::App app{"clipshard: score and filter image-text datasets with CLIP / LongCLIP"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version,-V", show_version,
               "print the versions of clipshard, LibTorch, CUDA, MPI and BLAS");

  auto* run = app.add_subcommand("run", "run a pipeline (resumes an unfinished run directory)");
  std::string config_path, op, model, output_dir, device;
  std::vector<std::string> sets, inputs, params;
  int batch_size = 0;
  bool restart = false;
  run->add_option("config", config_path, "pipeline config (JSON)");
  run->add_option("--set", sets, "override a config key: KEY=VALUE (dotted path, JSON value)");
  run->add_option("--op", op,
                  "operator: ImageCLIPEvaluator | ImageLongCLIPEvaluator | "
                  "ImageClipFilter");
  run->add_option("--model", model, "model path or name (operator's model_name)");
  run->add_option("--input", inputs, "input JSONL manifest (path or glob; repeatable)");
  run->add_option("--output-dir", output_dir, "run directory");
  run->add_option("--param", params, "operator parameter NAME=VALUE (repeatable)");
  run->add_option("--batch-size", batch_size, "inference batch size");
  run->add_option("--device", device, "auto | cpu | cuda");
  run->add_flag("--restart", restart, "discard an earlier run in the directory and start over");

  auto* status = app.add_subcommand("status", "print the state of a run directory as JSON");
  std::string status_dir;
  status->add_option("run_dir", status_dir, "run directory")->required();

  auto* make = app.add_subcommand("make-model", "write a random-weight model in a real format");
  std::string preset, format = "hf", out;
  uint64_t seed = 1;
  bool fp16 = false;
  make->add_option("--preset", preset, "micro | tiny | vit-b-32 | longclip-tiny | longclip-l-336")
      ->required();
  make->add_option("--format", format, "hf (directory) | openai (.pt) | longclip (.pt)");
  make->add_option("--out", out, "output directory (hf) or file")->required();
  make->add_option("--seed", seed, "random seed");
  make->add_flag("--fp16", fp16, "store fp16 weights (as OpenAI's releases)");

  auto* exp = app.add_subcommand(
      "export",
      "write a finished run's embeddings aligned to its output rows (clip-retrieval layout)");
  std::string export_run_dir;
  ExportOptions export_options;
  bool image_only = false, text_only = false;
  exp->add_option("run_dir", export_run_dir, "run directory")->required();
  exp->add_option("--to", export_options.to, "output directory (must not exist or be empty)")
      ->required();
  exp->add_option("--op", export_options.op,
                  "pipeline step whose embeddings to export (0-based; default 0: the first)");
  exp->add_flag("--fp16", export_options.fp16, "write float16 .npy files (default float32)");
  exp->add_flag("--image-only", image_only, "write img_emb/ and metadata/ only");
  exp->add_flag("--text-only", text_only, "write text_emb/ and metadata/ only");
  exp->add_option("--rows-per-file", export_options.rows_per_file,
                  "rows per img_emb_N/text_emb_N/metadata_N file (default 1000000)");
  exp->add_flag("--force", export_options.force, "replace an earlier export in --to");

  app.add_subcommand("version", "same as --version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (show_version || app.got_subcommand("version")) return cmd_version();
    if (app.get_subcommands().empty()) {
      std::cerr << app.help() << std::endl;
      return kExitUsage;
    }
    if (app.got_subcommand("status")) {
      std::cout << run_status(status_dir).dump() << std::endl;
      return kExitOk;
    }
    if (app.got_subcommand("make-model")) return cmd_make_model(preset, format, out, seed, fp16);
    if (app.got_subcommand("export")) {
      export_options.image = !text_only;
      export_options.text = !image_only;
      const ExportResult r = export_run(export_run_dir, export_options);
      std::cerr << "clipshard: exported " << r.rows << " rows (" << r.operator_name << ", dim "
                << r.dim << ", " << r.files << " file(s) per folder) to "
                << export_options.to.string();
      if (r.skipped > 0) std::cerr << "; " << r.skipped << " output rows without embeddings";
      std::cerr << std::endl;
      return kExitOk;
    }

    // From here on SIGTERM/SIGINT/SIGUSR1 only raise the stop flag: a signal that arrives while the
    // config is read, MPI starts or the models load still ends the run cleanly with status 75.
    install_stop_signal_handlers();
    nlohmann::json config;
    if (!config_path.empty()) {
      if (!op.empty() || !inputs.empty())
        throw std::invalid_argument("give either a CONFIG file or --op/--input, not both");
      config = load_config_file(config_path);
      if (!output_dir.empty()) config["output_dir"] = output_dir;
    } else {
      if (op.empty() || inputs.empty() || output_dir.empty()) {
        std::cerr << "clipshard run: give a CONFIG file, or --op, --input and --output-dir\n"
                  << run->help() << std::endl;
        return kExitUsage;
      }
      config = config_from_flags(op, model, inputs, output_dir, params);
    }
    if (batch_size > 0) config["batch_size"] = batch_size;
    if (!device.empty()) config["device"] = device;
    for (const auto& s : sets) apply_set(config, s);
    const RunConfig parsed = parse_run_config(config);
    JobOptions options;
    options.restart = restart;
    if (launched_by_mpi()) return run_job_mpi(parsed, options, &argc, &argv);
    return run_job_in_process(parsed, options);
  } catch (const std::exception& e) {
    std::cerr << "clipshard: error: " << e.what() << std::endl;
    return kExitError;
  }
}

}  // namespace clipshard
