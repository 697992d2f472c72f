// The three DataFlow-MM operators: names, parameters, defaults, keys and score scales.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace clipshard {

enum class OperatorKind { kClipEvaluator, kLongClipEvaluator, kClipFilter };

struct OperatorSpec {
  OperatorKind kind = OperatorKind::kClipEvaluator;
  // Constructor parameters.
  std::string model_name;  // default per kind (see default_model_name)
  std::string device;      // "" = the run's device (DataFlow-MM's device=None: cuda if available)
  // clipshard extension: "" (null) = the run's precision; else "auto", "fp32", "fp16" or "bf16",
  // which overrides the run's (resolve_precision).
  std::string precision;
  // clipshard extension: the open_clip architecture of a bare state dict without a config (an
  // open_clip model name such as "ViT-B-32-quickgelu", or an open_clip config file); "" = none.
  std::string architecture;
  // Run parameters (defaults per kind, docs/CONFIG.md).
  std::string image_key;    // input_image_key: "image_path" (evaluators) / "image" (filter)
  std::string text_key;     // input_text_key / input_caption_key: "text" / "caption"
  std::string output_key;   // evaluators only: "clip_score" / "longclip_score"
  double threshold = 0.25;  // filter only
  std::optional<double> top_fraction;  // filter only, clipshard extension: keep the best X
                                       // (0 < X <= 1) of all rows, computed over the dataset

  bool is_filter() const { return kind == OperatorKind::kClipFilter; }
  bool is_long_clip() const { return kind == OperatorKind::kLongClipEvaluator; }
};

// "ImageCLIPEvaluator", "ImageLongCLIPEvaluator", "ImageClipFilter".
const char* operator_name(OperatorKind kind);
// Throws std::invalid_argument listing the known operators.
OperatorKind parse_operator_name(const std::string& name);
const char* default_model_name(OperatorKind kind);

// True for the spellings of the `precision` setting: "auto", "fp32", "fp16", "bf16".
bool is_precision_name(const std::string& precision);

// The precision an operator runs in, from its configured value ("" or "auto" = DataFlow-MM's
// choice: ImageCLIPEvaluator and ImageClipFilter in fp32 on every device, ImageLongCLIPEvaluator
// in fp16 on CUDA and fp32 on the CPU) and whether its device is CUDA. Returns "fp32", "fp16" or
// "bf16"; an explicit value is returned as is (fp16 on the CPU is refused where the model is
// placed, models/clip resolve_device). Throws std::invalid_argument for an unknown spelling.
std::string resolve_precision(OperatorKind kind, const std::string& configured, bool cuda);

// Parses one pipeline step: {"operator": NAME, <parameter>: value, ...}. Unknown parameters,
// wrong types and out-of-range values (threshold outside [0, 1] is allowed as in DataFlow-MM,
// but NaN is not; top_fraction outside (0, 1]) throw std::invalid_argument naming the parameter.
OperatorSpec parse_operator_spec(const nlohmann::json& step);

// The parameter names accepted for an operator (for --param validation and messages).
std::vector<std::string> operator_parameter_names(OperatorKind kind);

// The settings of a spec that change what a shard computes (its parts), for the run fingerprint.
nlohmann::json to_fingerprint_json(const OperatorSpec& spec);

// The settings of a spec that only change the merge's keep/drop decision over the stored
// similarities: {"threshold", "top_fraction" (null when unset)} for a filter, {} for an
// evaluator. Changing them on a finished run re-merges without computing anything.
nlohmann::json to_merge_settings_json(const OperatorSpec& spec);

// Score scales: how the cosine of the normalised image and text embeddings (float32) becomes what
// the operators report. Every worker computes scores through these (docs/FORMATS.md).
//
// An evaluator's score, written under output_key: (cos + 1) / 2 in double, clamped to [0, 1]
// (rounding can take |cos| a little past 1). A bad row is written as kBadRowScore.
double evaluator_score(float cosine);
constexpr double kBadRowScore = 0.0;
// A filter's similarity, compared with its threshold: clamp(cos, 0, 1) in float, never -0.0 (a
// cos of -0.0 gives +0.0), so that the sign bit is free to mark a bad row: kBadRowSimilarity,
// -0.0, compares like 0 in every threshold and top_fraction and lets the merge leave the row out
// of the score distribution (shard/merge.h, ScoredStep).
float filter_similarity(float cosine);
constexpr float kBadRowSimilarity = -0.0f;

}  // namespace clipshard
