// decode_bench: what `reduced_decode` buys and costs on JPEGs of every size (bench/README.md).
//
// For every *.jpg / *.jpeg under --images it times, on one thread (thread CPU time, best of
// --reps), the worker's whole per-image path: decode, PIL bicubic resize + center crop to the
// model's input, normalisation to float CHW. Once in exact (parity) mode, then in reduced mode for
// every margin of --margins (DecodeOptions::reduced_margin), with and without the fast IDCT
// (DecodeOptions::reduced_fast_dct). With --model it also runs the image tower on every crop and
// compares the score each mode gives (cosine similarity of the image embedding with one fixed
// random-token caption per image, which is what the CLIP evaluators compute before their
// clamping/scaling) to exact mode: max and mean |delta score| and how many images change side of
// the median exact score (the worst place for a filter's threshold: the densest one).
//
// Prints one JSON object: per size bucket (longer side) and mode the images, the scale
// denominators chosen, decode and resize CPU ms per image, images/s per core, the speed-up over
// exact mode, pixel differences of the uint8 crop, and the score differences.
//
// Usage: decode_bench --images DIR [--model PATH] [--size N] [--margins 1,1.5,2] [--reps R]
//                     [--threads T]
// Also prints, per bucket, libjpeg's entropy decoding alone (entropy_decode_only_ms): the part of
// every decode no DCT scaling removes.
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

// jpeglib.h needs FILE and size_t declared first.
// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on

#include "models/clip/model_loader.h"
#include "models/image/image_decoder.h"
#include "models/image/preprocess.h"
#include "models/weights/process_tuning.h"

namespace {

using namespace clipshard;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// libjpeg's Huffman decoding alone (jpeg_read_coefficients: no IDCT, no colour conversion, no
// upsampling). Every decode of a baseline JPEG pays it whatever the scale, so it bounds what
// reduced_decode can save. Errors use libjpeg's default handler (exit): bench input only.
double entropy_decode_seconds(const std::vector<uint8_t>& bytes) {
  const double t0 = thread_cpu_seconds();
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  (void)jpeg_read_coefficients(&cinfo);
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return thread_cpu_seconds() - t0;
}

struct Mode {
  std::string name;
  DecodeOptions decode;
};

struct Sample {
  std::string file;
  int width = 0, height = 0;
  size_t bytes = 0;
  // Per mode:
  std::vector<int> denom;
  std::vector<double> decode_ms, resize_ms;
  std::vector<RgbImage> crop;
  std::vector<double> score;
  double entropy_ms = 0;
};

const std::vector<std::pair<int, int>> kBuckets = {{0, 600},     {600, 1000},  {1000, 1600},
                                                   {1600, 2400}, {2400, 3200}, {3200, 100000}};

std::string bucket_name(const std::pair<int, int>& b) {
  return b.second >= 100000 ? ">=" + std::to_string(b.first)
                            : std::to_string(b.first) + "-" + std::to_string(b.second - 1);
}

}  // namespace

int main(int argc, char** argv) {
  std::string images_dir, model_path, margins_arg = "1,1.25,1.5,2";
  int size = 224, reps = 3, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--images")
      images_dir = v;
    else if (a == "--model")
      model_path = v;
    else if (a == "--size")
      size = std::stoi(v);
    else if (a == "--margins")
      margins_arg = v;
    else if (a == "--reps")
      reps = std::stoi(v);
    else if (a == "--threads")
      threads = std::stoi(v);
  }
  if (images_dir.empty()) {
    std::cerr << "usage: decode_bench --images DIR [--model PATH] [--size N] [--margins 1,1.5,2] "
                 "[--reps R] [--threads T]\n";
    return 2;
  }
  // The process settings clipshard's main() and worker make (freed blocks kept up to 32 MiB, one
  // arena; the thread count), so the buffers of a decode cost what they cost in a run.
  ProcessTuning tuning;
  tuning.torch_threads = threads;
  tune_process(tuning);
  try {
    LoadedModel loaded;
    if (!model_path.empty()) {
      ModelRequest request;
      request.name_or_path = model_path;
      loaded = load_model(request);
      size = loaded.dims.image_resolution;
    }
    const PreprocessSpec spec = openai_preprocess(size);
    const NormalizeLut lut = make_normalize_lut(spec);

    std::vector<Mode> modes;
    modes.push_back({"exact", DecodeOptions{}});
    std::stringstream list(margins_arg);
    std::vector<double> margins;
    for (std::string m; std::getline(list, m, ',');) margins.push_back(std::stod(m));
    for (const bool fast : {false, true}) {
      for (const double m : margins) {
        Mode mode;
        std::ostringstream name;
        name << "reduced m=" << m << (fast ? " fast-dct" : "");
        mode.name = name.str();
        mode.decode.reduced_decode = true;
        mode.decode.target_short_side = size;
        mode.decode.reduced_margin = m;
        mode.decode.reduced_fast_dct = fast;
        modes.push_back(mode);
      }
    }

    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(images_dir)) {
      const auto ext = e.path().extension().string();
      if (ext == ".jpg" || ext == ".jpeg") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw std::runtime_error("no .jpg files in " + images_dir);

    std::vector<Sample> samples;
    std::vector<float> chw(3 * static_cast<size_t>(size) * size);
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
      Sample s;
      s.file = f.filename().string();
      s.bytes = bytes.size();
      double best_entropy = 1e30;
      for (int r = 0; r < reps; ++r)
        best_entropy = std::min(best_entropy, entropy_decode_seconds(bytes));
      s.entropy_ms = 1e3 * best_entropy;
      for (const auto& mode : modes) {
        double best_decode = 1e30, best_resize = 1e30;
        RgbImage decoded, crop;
        for (int r = 0; r < reps; ++r) {
          // Fresh buffers every time, as the worker decodes each image into a new RgbImage.
          decoded = RgbImage{};
          crop = RgbImage{};
          const double t0 = thread_cpu_seconds();
          const RowStatus st =
              decode_image_bytes(bytes.data(), bytes.size(), mode.decode, &decoded);
          const double t1 = thread_cpu_seconds();
          if (!st.ok()) throw std::runtime_error(f.string() + ": " + st.message);
          resize_and_center_crop(decoded, spec, &crop);
          normalize_to_chw(crop, lut, chw.data());
          const double t2 = thread_cpu_seconds();
          best_decode = std::min(best_decode, t1 - t0);
          best_resize = std::min(best_resize, t2 - t1);
        }
        if (&mode == &modes.front()) {
          s.width = decoded.width;
          s.height = decoded.height;
        }
        s.denom.push_back(jpeg_reduced_scale_denominator(
            s.width ? s.width : decoded.width, s.height ? s.height : decoded.height, mode.decode));
        s.decode_ms.push_back(1e3 * best_decode);
        s.resize_ms.push_back(1e3 * best_resize);
        s.crop.push_back(std::move(crop));
      }
      samples.push_back(std::move(s));
    }

    // Scores: image tower on every crop, one fixed random caption per image.
    const bool with_scores = !model_path.empty();
    if (with_scores) {
      torch::NoGradGuard no_grad;
      const int n = static_cast<int>(samples.size());
      std::mt19937 rng(1234);
      const int text_len = 16;
      auto ids = torch::empty({n, text_len}, torch::kLong);
      for (int i = 0; i < n; ++i) {
        ids[i][0] = 49406;
        for (int t = 1; t + 1 < text_len; ++t) ids[i][t] = static_cast<int64_t>(1 + rng() % 49000);
        ids[i][text_len - 1] = 49407;
      }
      auto text = loaded.model->encode_text(ids);
      text = text / text.norm(2, -1, true);
      for (size_t m = 0; m < modes.size(); ++m) {
        auto batch = torch::empty({n, 3, size, size});
        for (int i = 0; i < n; ++i)
          normalize_to_chw(samples[i].crop[m], lut, batch[i].data_ptr<float>());
        auto img = loaded.model->encode_image(batch);
        img = img / img.norm(2, -1, true);
        auto scores = (img * text).sum(-1);
        for (int i = 0; i < n; ++i) samples[i].score.push_back(scores[i].item<double>());
      }
    }
    double median = 0;
    if (with_scores) {
      std::vector<double> exact;
      for (const auto& s : samples) exact.push_back(s.score[0]);
      std::nth_element(exact.begin(), exact.begin() + exact.size() / 2, exact.end());
      median = exact[exact.size() / 2];
    }

    nlohmann::json out = {{"images", samples.size()},
                          {"size", size},
                          {"reps", reps},
                          {"model", model_path},
                          {"median_exact_score", median}};
    for (auto bucket_all : {true, false}) {
      for (const auto& b : kBuckets) {
        if (bucket_all && &b != &kBuckets.front()) break;
        std::vector<const Sample*> in;
        for (const auto& s : samples) {
          const int long_side = std::max(s.width, s.height);
          if (bucket_all || (long_side >= b.first && long_side < b.second)) in.push_back(&s);
        }
        if (in.empty()) continue;
        nlohmann::json bj;
        bj["bucket_long_side"] = bucket_all ? "all" : bucket_name(b);
        bj["images"] = in.size();
        double mpix = 0, kbytes = 0;
        for (const Sample* s : in) {
          mpix += 1e-6 * s->width * s->height;
          kbytes += 1e-3 * static_cast<double>(s->bytes);
        }
        bj["mean_megapixels"] = mpix / in.size();
        bj["mean_kbytes"] = kbytes / in.size();
        double entropy = 0;
        for (const Sample* s : in) entropy += s->entropy_ms;
        bj["entropy_decode_only_ms"] = entropy / in.size();
        double exact_ms = 0;
        for (const Sample* s : in) exact_ms += s->decode_ms[0] + s->resize_ms[0];
        for (size_t m = 0; m < modes.size(); ++m) {
          double dec = 0, res = 0, max_px = 0, sum_px = 0, max_ds = 0, sum_ds = 0;
          size_t px_count = 0;
          int flips = 0;
          std::map<int, int> denoms;
          for (const Sample* s : in) {
            dec += s->decode_ms[m];
            res += s->resize_ms[m];
            denoms[s->denom[m]]++;
            const auto& a = s->crop[0].pixels;
            const auto& c = s->crop[m].pixels;
            for (size_t k = 0; k < a.size() && k < c.size(); ++k) {
              const double d = std::abs(static_cast<int>(a[k]) - static_cast<int>(c[k]));
              max_px = std::max(max_px, d);
              sum_px += d;
            }
            px_count += a.size();
            if (with_scores) {
              const double ds = std::abs(s->score[m] - s->score[0]);
              max_ds = std::max(max_ds, ds);
              sum_ds += ds;
              if ((s->score[0] >= median) != (s->score[m] >= median)) ++flips;
            }
          }
          nlohmann::json mj;
          for (const auto& [d, c] : denoms) mj["scale_1_over"][std::to_string(d)] = c;
          mj["decode_ms"] = dec / in.size();
          mj["resize_ms"] = res / in.size();
          mj["images_per_s_per_core"] = 1e3 * in.size() / (dec + res);
          mj["speedup_vs_exact"] = exact_ms / (dec + res);
          mj["max_abs_pixel_diff"] = max_px;
          mj["mean_abs_pixel_diff"] = sum_px / std::max<size_t>(px_count, 1);
          if (with_scores) {
            mj["max_abs_score_diff"] = max_ds;
            mj["mean_abs_score_diff"] = sum_ds / in.size();
            mj["flips_at_median"] = flips;
          }
          bj["modes"][modes[m].name] = mj;
        }
        out["buckets"].push_back(bj);
      }
    }
    std::cout << out.dump(2) << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "decode_bench: " << e.what() << std::endl;
    return 1;
  }
}
