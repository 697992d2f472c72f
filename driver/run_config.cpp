#include "driver/run_config.h"

#include <stdexcept>

namespace clipshard {

namespace {

using nlohmann::json;

// A string for which `allowed` holds (null = `null_means`); `names` is how the error message
// lists the allowed values.
template <class Allowed>
auto config_choice(Allowed allowed, std::string null_means, std::string names) {
  return [=](const json& v, const std::string& path) {
    const std::string s = v.is_null() ? null_means : read_config_string(v, path);
    if (!allowed(s)) throw_config_error(path, "must be " + names + ", got \"" + s + "\"");
    return s;
  };
}

const ConfigFields<StepFilesConfig>& step_files_config_fields() {
  using O = StepFilesConfig;
  static const ConfigFields<O> fields = {
      config_field("cache_path", &O::cache_path, config_string()),
      config_field("file_name_prefix", &O::file_name_prefix, config_string()),
  };
  return fields;
}

ConfigFields<RunConfig> make_run_config_fields() {
  using O = RunConfig;
  ConfigFields<O> own = {
      config_field("input", &O::inputs, config_list_of<std::string>()),
      config_field("output_dir", &O::output_dir, config_string()),
      config_field("models_dir", &O::models_dir, config_string()),
      config_field(
          "device", &O::device,
          config_choice(
              [](const std::string& s) { return s == "auto" || s == "cpu" || s == "cuda"; }, "auto",
              "\"auto\", \"cpu\" or \"cuda\""))
          .in_fingerprint(),
      config_field("lines_per_shard", &O::lines_per_shard, config_int(1, int64_t{1} << 40)),
      config_field("torch_threads", &O::torch_threads, config_int(0, 1024)),
      config_field("webdataset_output", &O::webdataset_output, config_string()),
      config_field("progress_interval_s", &O::progress_interval_s, config_number(0.0)),
      config_field("worker_timeout_s", &O::worker_timeout_s, config_number(1.0)),
  };

  ConfigField<O> precision = config_field(
      "precision", &O::precision,
      config_choice(is_precision_name, "auto", "\"auto\", \"fp32\", \"fp16\" or \"bf16\""));
  // Only when set, so that the fingerprints of existing runs do not change. The precision and
  // device type each operator resolved to are checked separately (state.json's "resolved").
  precision.fingerprint = [](const O& c, json* fp) {
    if (c.precision != "auto") (*fp)["precision"] = c.precision;
  };
  own.push_back(std::move(precision));

  ConfigField<O> step_files;  // an object, or null for none
  step_files.key = "step_files";
  step_files.read = [](const json& v, const std::string& path, O* c) {
    if (v.is_null()) return;
    if (!v.is_object()) throw_config_error(path, "must be an object or null");
    read_config_object(step_files_config_fields(), v, path + ".", &c->step_files);
    c->has_step_files = true;
  };
  step_files.value = [](const O& c) {
    return c.has_step_files ? config_values(step_files_config_fields(), c.step_files) : json();
  };
  own.push_back(std::move(step_files));

  ConfigField<O> pipeline;
  pipeline.key = "pipeline";
  pipeline.read = [](const json& v, const std::string& path, O* c) {
    if (!v.is_array() || v.empty())
      throw_config_error(path, "must be a non-empty list of operator steps");
    for (size_t i = 0; i < v.size(); ++i) {
      try {
        c->pipeline.push_back(parse_operator_spec(v[i]));
      } catch (const std::invalid_argument& e) {
        throw_config_error(path + "." + std::to_string(i), e.what());
      }
    }
  };
  // As the fingerprint holds it: a filter's threshold and top_fraction are merge_settings.
  pipeline.value = [](const O& c) {
    json steps = json::array();
    for (const auto& op : c.pipeline) steps.push_back(to_fingerprint_json(op));
    return steps;
  };
  pipeline.fingerprint = [value = pipeline.value](const O& c, json* fp) {
    (*fp)["pipeline"] = value(c);
  };
  own.push_back(std::move(pipeline));

  ConfigField<O> comment;  // free text for the reader; ignored
  comment.key = "comment";
  comment.read = [](const json&, const std::string&, O*) {};
  comment.value = [](const O&) { return json(); };
  own.push_back(std::move(comment));

  return own + embedded_config_fields<O>(
                   clip_processor_config_fields(), [](auto& c) -> auto& { return c.processing; });
}

}  // namespace

const ConfigFields<RunConfig>& run_config_fields() {
  static const ConfigFields<RunConfig> fields = make_run_config_fields();
  return fields;
}

RunConfig parse_run_config(const json& config) {
  RunConfig c;
  read_config_object(run_config_fields(), config, "", &c);
  if (c.inputs.empty()) throw_config_error("input", "at least one input manifest is required");
  if (c.output_dir.empty()) throw_config_error("output_dir", "is required (the run directory)");
  if (c.pipeline.empty()) throw_config_error("pipeline", "at least one operator step is required");
  // fp16 has no CPU kernels (models/clip resolve_device); refused here when the device is known.
  for (size_t i = 0; i < c.pipeline.size(); ++i) {
    const auto& op = c.pipeline[i];
    const std::string device = op.device.empty() ? c.device : op.device;
    const std::string precision = op.precision.empty() ? c.precision : op.precision;
    if (device == "cpu" && precision == "fp16")
      throw_config_error(
          op.precision.empty() ? "precision" : "pipeline." + std::to_string(i) + ".precision",
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
  json fingerprint = json::object();
  add_config_fingerprint(run_config_fields(), c, &fingerprint);
  return fingerprint;
}

json merge_settings(const RunConfig& c) {
  json steps = json::array();
  for (const auto& op : c.pipeline) steps.push_back(to_merge_settings_json(op));
  return {{"pipeline", steps}};
}

}  // namespace clipshard
