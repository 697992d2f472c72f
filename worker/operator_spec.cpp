#include "worker/operator_spec.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace clipshard {

double evaluator_score(float cosine) {
  return std::clamp((static_cast<double>(cosine) + 1.0) / 2.0, 0.0, 1.0);
}

float filter_similarity(float cosine) {
  // "+ 0.0f" turns a -0.0 (clamp returns its argument when cos is -0.0) into +0.0.
  return std::clamp(cosine, 0.0f, 1.0f) + 0.0f;
}

const char* operator_name(OperatorKind kind) {
  switch (kind) {
    case OperatorKind::kClipEvaluator:
      return "ImageCLIPEvaluator";
    case OperatorKind::kLongClipEvaluator:
      return "ImageLongCLIPEvaluator";
    case OperatorKind::kClipFilter:
      return "ImageClipFilter";
  }
  return "?";
}

OperatorKind parse_operator_name(const std::string& name) {
  for (auto kind : {OperatorKind::kClipEvaluator, OperatorKind::kLongClipEvaluator,
                    OperatorKind::kClipFilter}) {
    if (name == operator_name(kind)) return kind;
  }
  throw std::invalid_argument("unknown operator \"" + name +
                              "\" (known: ImageCLIPEvaluator, ImageLongCLIPEvaluator, "
                              "ImageClipFilter)");
}

const char* default_model_name(OperatorKind kind) {
  return kind == OperatorKind::kLongClipEvaluator ? "BeichenZhang/LongCLIP-L-336px"
                                                  : "openai/clip-vit-base-patch32";
}

std::vector<std::string> operator_parameter_names(OperatorKind kind) {
  switch (kind) {
    case OperatorKind::kClipEvaluator:
    case OperatorKind::kLongClipEvaluator:
      return {"model_name",      "architecture",   "device",    "precision",
              "input_image_key", "input_text_key", "output_key"};
    case OperatorKind::kClipFilter:
      return {"model_name",      "architecture",      "device",    "precision",
              "input_image_key", "input_caption_key", "threshold", "top_fraction"};
  }
  return {};
}

bool is_precision_name(const std::string& precision) {
  return precision == "auto" || precision == "fp32" || precision == "fp16" || precision == "bf16";
}

std::string resolve_precision(OperatorKind kind, const std::string& configured, bool cuda) {
  if (configured.empty() || configured == "auto") {
    // DataFlow-MM runs CLIPModel as loaded (fp32) on every device, and Long-CLIP's loader casts
    // the model to fp16 on CUDA (clip.load's convert_weights) and to fp32 on the CPU.
    return kind == OperatorKind::kLongClipEvaluator && cuda ? "fp16" : "fp32";
  }
  if (!is_precision_name(configured))
    throw std::invalid_argument("unknown precision \"" + configured +
                                "\" (use auto, fp32, fp16 or bf16)");
  return configured;
}

namespace {

std::string get_string(const nlohmann::json& value, const std::string& op,
                       const std::string& name) {
  if (!value.is_string())
    throw std::invalid_argument(op + ": parameter \"" + name + "\" must be a string, got " +
                                value.type_name());
  if (value.get<std::string>().empty() && name != "device")
    throw std::invalid_argument(op + ": parameter \"" + name + "\" must not be empty");
  return value.get<std::string>();
}

double get_number(const nlohmann::json& value, const std::string& op, const std::string& name) {
  if (!value.is_number())
    throw std::invalid_argument(op + ": parameter \"" + name + "\" must be a number, got " +
                                value.type_name());
  const double v = value.get<double>();
  if (!std::isfinite(v))
    throw std::invalid_argument(op + ": parameter \"" + name + "\" must be finite");
  return v;
}

}  // namespace

OperatorSpec parse_operator_spec(const nlohmann::json& step) {
  if (!step.is_object()) throw std::invalid_argument("a pipeline step must be a JSON object");
  auto name_it = step.find("operator");
  if (name_it == step.end() || !name_it->is_string())
    throw std::invalid_argument(
        "a pipeline step needs \"operator\": one of ImageCLIPEvaluator, "
        "ImageLongCLIPEvaluator, ImageClipFilter");
  const std::string op = name_it->get<std::string>();
  OperatorSpec spec;
  spec.kind = parse_operator_name(op);
  spec.model_name = default_model_name(spec.kind);
  if (spec.is_filter()) {
    spec.image_key = "image";
    spec.text_key = "caption";
  } else {
    spec.image_key = "image_path";
    spec.text_key = "text";
    spec.output_key = spec.is_long_clip() ? "longclip_score" : "clip_score";
  }
  const auto allowed = operator_parameter_names(spec.kind);
  for (auto it = step.begin(); it != step.end(); ++it) {
    const std::string& key = it.key();
    if (key == "operator") continue;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw std::invalid_argument(op + ": unknown parameter \"" + key + "\" (accepted: " + list +
                                  ")");
    }
    if (key == "model_name")
      spec.model_name = get_string(*it, op, key);
    else if (key == "architecture")
      spec.architecture = it->is_null() ? "" : get_string(*it, op, key);
    else if (key == "device") {
      spec.device = it->is_null() ? "" : get_string(*it, op, key);
      if (!spec.device.empty() && spec.device != "auto" && spec.device != "cpu" &&
          spec.device.rfind("cuda", 0) != 0)
        throw std::invalid_argument(op + ": device must be null, \"auto\", \"cpu\" or \"cuda\"");
    } else if (key == "precision") {
      spec.precision = it->is_null() ? "" : get_string(*it, op, key);
      if (!spec.precision.empty() && !is_precision_name(spec.precision))
        throw std::invalid_argument(op +
                                    ": parameter \"precision\" must be null, \"auto\", "
                                    "\"fp32\", \"fp16\" or \"bf16\", got \"" +
                                    spec.precision + "\"");
    } else if (key == "input_image_key")
      spec.image_key = get_string(*it, op, key);
    else if (key == "input_text_key" || key == "input_caption_key")
      spec.text_key = get_string(*it, op, key);
    else if (key == "output_key")
      spec.output_key = get_string(*it, op, key);
    else if (key == "threshold")
      spec.threshold = get_number(*it, op, key);
    else if (key == "top_fraction") {
      if (it->is_null()) continue;
      const double f = get_number(*it, op, key);
      if (!(f > 0.0 && f <= 1.0))
        throw std::invalid_argument(op + ": top_fraction must be in (0, 1], got " +
                                    std::to_string(f));
      spec.top_fraction = f;
    }
  }
  return spec;
}

nlohmann::json to_fingerprint_json(const OperatorSpec& spec) {
  nlohmann::json j = {{"operator", operator_name(spec.kind)},
                      {"model_name", spec.model_name},
                      {"input_image_key", spec.image_key},
                      {"input_text_key", spec.text_key}};
  // Only when set, so that the fingerprints of existing runs do not change.
  if (!spec.architecture.empty()) j["architecture"] = spec.architecture;
  if (!spec.precision.empty()) j["precision"] = spec.precision;
  // A filter's threshold and top_fraction are not here: they only decide, at merge time, which
  // of the stored similarities are kept (to_merge_settings_json).
  if (!spec.is_filter()) j["output_key"] = spec.output_key;
  return j;
}

nlohmann::json to_merge_settings_json(const OperatorSpec& spec) {
  if (!spec.is_filter()) return nlohmann::json::object();
  return {
      {"threshold", spec.threshold},
      {"top_fraction", spec.top_fraction ? nlohmann::json(*spec.top_fraction) : nlohmann::json()}};
}

}  // namespace clipshard
