// model_bench: the towers alone (no decoding, no I/O), for profiling the forward pass.
//
// Usage: model_bench --model PATH [--family clip|longclip] [--threads N] [--batch B[,B...]]
//                    [--text-len L] [--reps R] [--device cpu|cuda]
//                    [--precision auto|fp32|fp16|bf16] [--trace FILE [--trace-reps N]]
// load_model() sets glibc's malloc up for the forward (CLIPSHARD_DEFAULT_MALLOC=1 leaves glibc's
// defaults, for comparisons). Prints one JSON object: seconds per image batch and per text batch
// (best of R; *_median: their median), images/s and texts/s (from the best), and the pairs/s the
// two towers allow together. Several batch sizes (--batch 64,256,512: one model load, as the GPU
// check wants) print one object per line. Times include the host-to-device copy of the inputs and
// the copy of the features back, as in a run (encode_* return CPU tensors, so a CUDA batch is
// finished when they return). --trace writes a Chrome trace (chrome://tracing, Perfetto) of the
// ATen operators of one image and one text batch after a warm-up batch; --trace-reps N > 1 records
// N such traces, FILE then FILE.2 ... FILE.N (on a shared machine bench/trace_breakdown.py takes
// each operator's minimum over them).
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "models/clip/model_loader.h"
#include "models/weights/process_tuning.h"

int main(int argc, char** argv) {
  std::string model, family = "clip", device = "cpu", precision, trace, batches = "32";
  int threads = 0, text_len = 32, reps = 3, trace_reps = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model")
      model = v;
    else if (a == "--family")
      family = v;
    else if (a == "--threads")
      threads = std::stoi(v);
    else if (a == "--batch")
      batches = v;
    else if (a == "--precision")
      precision = v;
    else if (a == "--text-len")
      text_len = std::stoi(v);
    else if (a == "--reps")
      reps = std::stoi(v);
    else if (a == "--device")
      device = v;
    else if (a == "--trace")
      trace = v;
    else if (a == "--trace-reps")
      trace_reps = std::stoi(v);
  }
  if (model.empty()) {
    std::cerr << "usage: model_bench --model PATH [--family clip|longclip] [--threads N] "
                 "[--batch B[,B...]] [--text-len L] [--reps R] [--device cpu|cuda] "
                 "[--precision auto|fp32|fp16|bf16] [--trace FILE [--trace-reps N]]\n";
    return 2;
  }
  try {
    // As a clipshard worker runs: allocator tuned, the thread count asked for (0: Torch's default).
    clipshard::ProcessTuning tuning;
    tuning.torch_threads = threads;
    clipshard::tune_process(tuning);
    clipshard::ModelRequest request;
    request.name_or_path = model;
    request.family =
        family == "longclip" ? clipshard::ModelFamily::kLongClip : clipshard::ModelFamily::kClip;
    request.device = device;
    request.precision = precision;
    using Clock = std::chrono::steady_clock;
    const auto load_start = Clock::now();
    auto loaded = clipshard::load_model(request);
    const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
    const auto& d = loaded.dims;
    std::vector<int> sizes;
    std::stringstream list(batches);
    for (std::string b; std::getline(list, b, ',');) sizes.push_back(std::stoi(b));
    for (const int batch : sizes) {
      auto images = torch::randn({batch, 3, d.image_resolution, d.image_resolution});
      auto ids = torch::randint(1, 49000, {batch, text_len}, torch::kLong);
      ids.select(1, text_len - 1).fill_(49407);
      ids.select(1, 0).fill_(49406);
      // Best and median of `reps` timed calls after one untimed call: the best is the forward's
      // speed, the median what a run of many batches sees on a machine that is not quiet.
      struct Timing {
        double best, median;
      };
      auto time_reps = [&](auto fn) {
        fn();
        std::vector<double> seconds;
        for (int r = 0; r < reps; ++r) {
          const auto t = Clock::now();
          fn();
          seconds.push_back(std::chrono::duration<double>(Clock::now() - t).count());
        }
        std::sort(seconds.begin(), seconds.end());
        const size_t n = seconds.size();
        return Timing{seconds.front(),
                      n % 2 ? seconds[n / 2] : (seconds[n / 2 - 1] + seconds[n / 2]) / 2};
      };
      if (!trace.empty()) {
        (void)loaded.model->encode_image(images);
        (void)loaded.model->encode_text(ids);
        for (int r = 1; r <= std::max(1, trace_reps); ++r) {
          torch::autograd::profiler::RecordProfile guard(r == 1 ? trace
                                                                : trace + "." + std::to_string(r));
          (void)loaded.model->encode_image(images);
          (void)loaded.model->encode_text(ids);
        }
      }
      // Wall-clock bounds of the measurement, to match it with GPU utilisation samples.
      const auto epoch = [] {
        return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
            .count();
      };
      const double t_start = epoch();
      const Timing img_timing = time_reps([&] { (void)loaded.model->encode_image(images); });
      const Timing txt_timing = time_reps([&] { (void)loaded.model->encode_text(ids); });
      const double img = img_timing.best, txt = txt_timing.best;
      const double t_end = epoch();
      nlohmann::json out = {{"t_start", t_start},
                            {"t_end", t_end},
                            {"threads", at::get_num_threads()},
                            {"device", device},
                            {"precision", precision.empty() ? "auto" : precision},
                            {"load_seconds", load_seconds},
                            {"batch", batch},
                            {"text_len", text_len},
                            {"image_batch_seconds", img},
                            {"text_batch_seconds", txt},
                            {"image_batch_seconds_median", img_timing.median},
                            {"text_batch_seconds_median", txt_timing.median},
                            {"images_per_s", batch / img},
                            {"texts_per_s", batch / txt},
                            {"pairs_per_s", batch / (img + txt)}};
      std::cout << (sizes.size() == 1 ? out.dump(2) : out.dump()) << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "model_bench: " << e.what() << std::endl;
    return 1;
  }
}
