#include "driver/run_config.h"

#include <set>
#include <stdexcept>

namespace clipshard {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw std::invalid_argument("config key \"" + key + "\": " + what);
}

std::string as_string(const json& v, const std::string& key) {
  if (v.is_null()) return "";
  if (!v.is_string()) bad(key, std::string("must be a string, got ") + v.type_name());
  return v.get<std::string>();
}

bool as_bool(const json& v, const std::string& key) {
  if (!v.is_boolean()) bad(key, std::string("must be true or false, got ") + v.type_name());
  return v.get<bool>();
}

int64_t as_int(const json& v, const std::string& key, int64_t min, int64_t max) {
  if (!v.is_number_integer()) bad(key, std::string("must be an integer, got ") + v.type_name());
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max)
    bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                 std::to_string(x));
  return x;
}

double as_double(const json& v, const std::string& key, double min) {
  if (!v.is_number()) bad(key, std::string("must be a number, got ") + v.type_name());
  const double x = v.get<double>();
  if (!(x >= min)) bad(key, "must be >= " + std::to_string(min));
  return x;
}

std::vector<std::string> as_string_list(const json& v, const std::string& key) {
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) bad(key, "must be a string or a list of strings");
  for (const auto& e : v) out.push_back(as_string(e, key));
  return out;
}

void check_keys(const json& object, const std::string& where, const std::set<std::string>& known) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw std::invalid_argument("unknown config key \"" + where + it.key() +
                                  "\" (known: " + list + ")");
    }
  }
}

}  // namespace

RunConfig parse_run_config(const json& config) {
  if (!config.is_object()) throw std::invalid_argument("the config must be a JSON object");
  check_keys(config, "",
             {"input",
              "output_dir",
              "image_root",
              "enforce_image_root",
              "models_dir",
              "device",
              "precision",
              "batch_size",
              "lines_per_shard",
              "decode_threads",
              "torch_threads",
              "prefetch_batches",
              "max_image_pixels",
              "reduced_decode",
              "embedding_cache",
              "step_files",
              "webdataset_output",
              "progress_interval_s",
              "worker_timeout_s",
              "pipeline",
              "comment"});
  RunConfig c;
  for (auto it = config.begin(); it != config.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "input")
      c.inputs = as_string_list(v, k);
    else if (k == "output_dir")
      c.output_dir = as_string(v, k);
    else if (k == "image_root")
      c.image_root = as_string(v, k);
    else if (k == "enforce_image_root")
      c.enforce_image_root = as_bool(v, k);
    else if (k == "models_dir")
      c.models_dir = as_string(v, k);
    else if (k == "device") {
      c.device = v.is_null() ? "auto" : as_string(v, k);
      if (c.device != "auto" && c.device != "cpu" && c.device != "cuda")
        bad(k, "must be \"auto\", \"cpu\" or \"cuda\", got \"" + c.device + "\"");
    } else if (k == "precision") {
      c.precision = v.is_null() ? "auto" : as_string(v, k);
      if (!is_precision_name(c.precision))
        bad(k, "must be \"auto\", \"fp32\", \"fp16\" or \"bf16\", got \"" + c.precision + "\"");
    } else if (k == "batch_size")
      c.batch_size = static_cast<int>(as_int(v, k, 1, 65536));
    else if (k == "lines_per_shard")
      c.lines_per_shard = as_int(v, k, 1, int64_t{1} << 40);
    else if (k == "decode_threads")
      c.decode_threads = static_cast<int>(as_int(v, k, 0, 1024));
    else if (k == "torch_threads")
      c.torch_threads = static_cast<int>(as_int(v, k, 0, 1024));
    else if (k == "prefetch_batches")
      c.prefetch_batches = static_cast<int>(as_int(v, k, 0, 64));
    else if (k == "max_image_pixels")
      c.max_image_pixels = as_int(v, k, 1, int64_t{1} << 40);
    else if (k == "reduced_decode")
      c.reduced_decode = as_bool(v, k);
    else if (k == "progress_interval_s")
      c.progress_interval_s = as_double(v, k, 0.0);
    else if (k == "worker_timeout_s")
      c.worker_timeout_s = as_double(v, k, 1.0);
    else if (k == "embedding_cache") {
      if (!v.is_object()) bad(k, "must be an object");
      check_keys(v, "embedding_cache.", {"enabled", "lossy_fp16", "reuse"});
      if (v.contains("enabled")) c.embedding_cache.enabled = as_bool(v["enabled"], k + ".enabled");
      if (v.contains("lossy_fp16"))
        c.embedding_cache.lossy_fp16 = as_bool(v["lossy_fp16"], k + ".lossy_fp16");
      if (v.contains("reuse")) c.embedding_cache.reuse = as_string_list(v["reuse"], k + ".reuse");
    } else if (k == "webdataset_output") {
      c.webdataset_output = v.is_null() ? "" : as_string(v, k);
    } else if (k == "step_files") {
      if (v.is_null()) continue;
      if (!v.is_object()) bad(k, "must be an object or null");
      check_keys(v, "step_files.", {"cache_path", "file_name_prefix"});
      c.has_step_files = true;
      c.step_files.cache_path =
          as_string(v.value("cache_path", json("./cache")), k + ".cache_path");
      c.step_files.file_name_prefix = as_string(
          v.value("file_name_prefix", json("dataflow_cache_step")), k + ".file_name_prefix");
    } else if (k == "pipeline") {
      if (!v.is_array() || v.empty()) bad(k, "must be a non-empty list of operator steps");
      for (size_t i = 0; i < v.size(); ++i) {
        try {
          c.pipeline.push_back(parse_operator_spec(v[i]));
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument("config key \"pipeline." + std::to_string(i) +
                                      "\": " + e.what());
        }
      }
    }
  }
  if (c.inputs.empty()) bad("input", "at least one input manifest is required");
  if (c.output_dir.empty()) bad("output_dir", "is required (the run directory)");
  if (c.pipeline.empty()) bad("pipeline", "at least one operator step is required");
  // fp16 has no CPU kernels (models/clip resolve_device); refused here when the device is known.
  for (size_t i = 0; i < c.pipeline.size(); ++i) {
    const auto& op = c.pipeline[i];
    const std::string device = op.device.empty() ? c.device : op.device;
    const std::string precision = op.precision.empty() ? c.precision : op.precision;
    if (device == "cpu" && precision == "fp16")
      bad(op.precision.empty() ? "precision" : "pipeline." + std::to_string(i) + ".precision",
          "fp16 is not available on the CPU (LibTorch has no fp16 CPU kernels); use bf16 or "
          "fp32, or device cuda");
  }
  return c;
}

void apply_set(json& config, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument("--set expects KEY=VALUE, got \"" + assignment + "\"");
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;
  json* node = &config;
  size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (part.empty()) throw std::invalid_argument("--set: empty key segment in \"" + path + "\"");
    const bool last = dot == std::string::npos;
    if (node->is_array()) {
      size_t index = 0;
      try {
        index = std::stoul(part);
      } catch (...) {
        throw std::invalid_argument("--set: \"" + part + "\" must be a list index in " + path);
      }
      if (index >= node->size())
        throw std::invalid_argument("--set: index " + part + " out of range in " + path);
      node = &(*node)[index];
    } else {
      if (!node->is_object()) *node = json::object();
      node = &(*node)[part];
    }
    if (last) break;
    start = dot + 1;
  }
  *node = value;
}

json result_fingerprint(const RunConfig& c) {
  json ops = json::array();
  for (const auto& op : c.pipeline) ops.push_back(to_fingerprint_json(op));
  json j = {{"pipeline", ops},
            {"image_root", c.image_root},
            {"enforce_image_root", c.enforce_image_root},
            {"batch_size", c.batch_size},
            {"max_image_pixels", c.max_image_pixels},
            {"reduced_decode", c.reduced_decode},
            {"device", c.device},
            {"lossy_fp16_cache", c.embedding_cache.lossy_fp16}};
  // Only when set, so that the fingerprints of existing runs do not change. The precision and
  // device type each operator resolved to are checked separately (state.json's "resolved").
  if (c.precision != "auto") j["precision"] = c.precision;
  return j;
}

json merge_settings(const RunConfig& c) {
  json steps = json::array();
  for (const auto& op : c.pipeline) steps.push_back(to_merge_settings_json(op));
  return {{"pipeline", steps}};
}

}  // namespace clipshard
