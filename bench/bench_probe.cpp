// bench_probe: the FLOP side of the benchmark (bench/README.md).
//
// For a model and a manifest it prints one JSON object with
//   - FLOPs per pair (docs/PERFORMANCE.md): image tower + text tower at each caption's real token
//   length
//     (tokenized as the operator does: Hugging Face fast tokenizer at 77 for CLIP, the official
//     tokenizer at 248 for LongCLIP), a multiply-add counted as 2 FLOPs;
//   - the machine's dense fp32 matmul FLOP/s measured with LibTorch at the given thread count:
//     at::mm (the BLAS LibTorch links, OpenBLAS on Debian) and at::mkldnn_linear (oneDNN, weights
//     in oneDNN's blocked layout) on a square 2048³ product and on the model's own GEMM shapes; the
//     best of all of them is the limit;
//   - the FLOP limit in pairs/s = best FLOP/s / FLOPs per pair.
//
// Usage: bench_probe --model PATH --family clip|longclip --manifest M.jsonl [--text-key text]
//                    [--threads N] [--seconds S] [--batch B]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/clip/model_loader.h"
#include "models/text/clip_tokenizer.h"
#include "models/text/python_text.h"
#include "models/weights/process_tuning.h"

namespace {

using clipshard::ClipDims;
using Clock = std::chrono::steady_clock;

// One pre-LayerNorm transformer over n tokens: qkv, attention scores and mix, out projection, MLP.
double transformer_flops(double n, double width, double layers, double mlp) {
  const double per_layer = 2 * n * width * 3 * width   // qkv
                           + 2 * n * n * width         // q k^T (all heads)
                           + 2 * n * n * width         // attention x v
                           + 2 * n * width * width     // out projection
                           + 2 * n * width * mlp * 2;  // c_fc + c_proj
  return per_layer * layers;
}

double image_flops(const ClipDims& d) {
  const double grid = static_cast<double>(d.image_resolution / d.vision_patch);
  const double patches = grid * grid;
  const double conv = 2 * patches * d.vision_width * 3.0 * d.vision_patch * d.vision_patch;
  return conv + transformer_flops(patches + 1, d.vision_width, d.vision_layers, d.vision_mlp) +
         2.0 * d.vision_width * d.embed_dim;
}

double text_flops(const ClipDims& d, double tokens) {
  return transformer_flops(tokens, d.text_width, d.text_layers, d.text_mlp) +
         2.0 * d.text_width * d.embed_dim;
}

// Best FLOP/s of `fn` (one product of `flops`) within about `seconds`.
template <typename Fn>
double best_flops(Fn fn, double flops, double seconds) {
  fn();  // warm-up (oneDNN primitive creation, BLAS buffers)
  double best = 1e30;
  const auto start = Clock::now();
  int reps = 0;
  while (reps < 3 ||
         (std::chrono::duration<double>(Clock::now() - start).count() < seconds && reps < 200)) {
    const auto t = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t).count());
    ++reps;
  }
  return flops / best;
}

struct Shape {
  std::string name;
  int64_t m, k, n;
};

}  // namespace

int main(int argc, char** argv) {
  std::string model, family = "clip", manifest, text_key = "text";
  int threads = 0, batch = 32;
  double seconds = 2.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_probe: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      model = value();
    else if (a == "--family")
      family = value();
    else if (a == "--manifest")
      manifest = value();
    else if (a == "--text-key")
      text_key = value();
    else if (a == "--threads")
      threads = std::stoi(value());
    else if (a == "--seconds")
      seconds = std::stod(value());
    else if (a == "--batch")
      batch = std::stoi(value());
    else {
      std::cerr << "usage: bench_probe --model PATH --family clip|longclip --manifest M.jsonl "
                   "[--text-key text] [--threads N] [--seconds S] [--batch B]\n";
      return 2;
    }
  }
  if (model.empty() || manifest.empty() || (family != "clip" && family != "longclip")) {
    std::cerr << "bench_probe: --model, --manifest and --family clip|longclip are required\n";
    return 2;
  }
  try {
    // As a clipshard worker runs (load_model changes no process-wide state).
    clipshard::ProcessTuning tuning;
    tuning.torch_threads = threads;
    clipshard::tune_process(tuning);
    const bool long_clip = family == "longclip";
    clipshard::ModelRequest request;
    request.name_or_path = model;
    request.family = long_clip ? clipshard::ModelFamily::kLongClip : clipshard::ModelFamily::kClip;
    request.device = "cpu";
    const ClipDims dims = clipshard::load_model(request).dims;

    // Token lengths of the manifest's captions, as the operator tokenizes them.
    const auto tokenizer =
        clipshard::ClipTokenizer::bundled(long_clip ? clipshard::TokenizerFlavor::kOpenAI
                                                    : clipshard::TokenizerFlavor::kHuggingFaceFast);
    std::ifstream in(manifest);
    if (!in) throw std::runtime_error("cannot read manifest " + manifest);
    std::string line;
    double text_total = 0, tokens_total = 0;
    int64_t pairs = 0;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      if (line.empty()) continue;
      const auto row = nlohmann::json::parse(line);
      const std::string caption = row.at(text_key).get<std::string>();
      const auto ids = long_clip
                           ? tokenizer.tokenize(clipshard::python_split_join(caption),
                                                static_cast<int>(dims.context_length))
                           : tokenizer.tokenize(caption, static_cast<int>(dims.context_length));
      tokens_total += static_cast<double>(ids.ids.size());
      text_total += text_flops(dims, static_cast<double>(ids.ids.size()));
      ++pairs;
    }
    if (pairs == 0) throw std::runtime_error("manifest " + manifest + " has no rows");
    const double img = image_flops(dims), txt = text_total / static_cast<double>(pairs);

    // Dense fp32 GEMM throughput.
    c10::InferenceMode guard;
    const int64_t grid = dims.image_resolution / dims.vision_patch;
    const int64_t m = static_cast<int64_t>(batch) * (grid * grid + 1);
    const int64_t w = dims.vision_width, mlp = dims.vision_mlp;
    const std::vector<Shape> shapes = {{"square2048", 2048, 2048, 2048},
                                       {"qkv", m, w, 3 * w},
                                       {"mlp_fc", m, w, mlp},
                                       {"mlp_proj", m, mlp, w}};
    nlohmann::json gemm = nlohmann::json::array();
    double best = 0, best_blas = 0;
    std::string best_name;
    for (const Shape& s : shapes) {
      const double flops = 2.0 * s.m * s.k * s.n;
      auto a = torch::randn({s.m, s.k});
      auto b = torch::randn({s.n, s.k});
      auto bias = torch::randn({s.n});
      const auto bt = b.t();
      const double blas = best_flops([&] { (void)at::mm(a, bt); }, flops, seconds);
      double dnnl = 0;
      try {
        const auto am = a.to_mkldnn();
        dnnl = best_flops([&] { (void)at::mkldnn_linear(am, b, bias); }, flops, seconds);
      } catch (const std::exception& e) {
        std::cerr << "bench_probe: oneDNN linear unavailable: " << e.what() << "\n";
      }
      gemm.push_back({{"shape", s.name},
                      {"m", s.m},
                      {"k", s.k},
                      {"n", s.n},
                      {"blas_gflops", blas / 1e9},
                      {"onednn_gflops", dnnl / 1e9}});
      best_blas = std::max(best_blas, blas);
      for (auto [v, name] : {std::make_pair(blas, "blas"), std::make_pair(dnnl, "onednn")}) {
        if (v > best) {
          best = v;
          best_name = s.name + "/" + name;
        }
      }
    }
    nlohmann::json out = {
        {"model", model},
        {"family", family},
        {"threads", at::get_num_threads()},
        {"dims",
         {{"vision_width", dims.vision_width},
          {"vision_layers", dims.vision_layers},
          {"vision_patch", dims.vision_patch},
          {"image_resolution", dims.image_resolution},
          {"text_width", dims.text_width},
          {"text_layers", dims.text_layers},
          {"context_length", dims.context_length},
          {"embed_dim", dims.embed_dim}}},
        {"pairs", pairs},
        {"mean_text_tokens", tokens_total / static_cast<double>(pairs)},
        {"gflop_per_image", img / 1e9},
        {"gflop_per_text_mean", txt / 1e9},
        {"gflop_per_pair", (img + txt) / 1e9},
        {"gemm", gemm},
        {"best_gflops", best / 1e9},
        {"best_gemm", best_name},
        {"flop_limit_pairs_per_s", best / (img + txt)},
        {"blas_best_gflops", best_blas / 1e9},
        {"flop_limit_blas_only_pairs_per_s", best_blas / (img + txt)},
    };
    std::cout << out.dump(2) << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_probe: " << e.what() << std::endl;
    return 1;
  }
}
