#include "worker/model_bank.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "models/clip/model_loader.h"
#include "models/text/python_text.h"

namespace clipshard {
namespace {

// 8 hex digits of the normalisation constants: cache tables of one model and size but different
// mean/std must not mix.
std::string normalization_tag(const PreprocessSpec& spec) {
  uint32_t h = 2166136261u;  // FNV-1a over the float bytes
  for (const auto* arr : {&spec.mean, &spec.std})
    for (float f : *arr) {
      unsigned char bytes[sizeof(float)];
      std::memcpy(bytes, &f, sizeof(float));
      for (unsigned char b : bytes) h = (h ^ b) * 16777619u;
    }
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", h);
  return hex;
}

// A loaded model as it runs on this rank, under the name the config gave it (`op` left empty).
OperatorModelInfo resolved_info(const LoadedModel& loaded, const std::string& model_name) {
  const DeviceChoice& placement = loaded.model->placement();
  OperatorModelInfo info;
  info.model_name = model_name;
  info.resolved_path = loaded.resolved_path.string();
  info.weights_file = loaded.weights_file.string();
  info.format = model_format_name(loaded.format);
  info.fingerprint = loaded.fingerprint;
  info.device = placement.device.str();
  info.device_type = placement.device.is_cuda()  ? "cuda"
                     : placement.device.is_cpu() ? "cpu"
                                                 : placement.device.str();
  info.precision = precision_name(placement.dtype);
  return info;
}

}  // namespace

struct ModelBank::Model {
  LoadedModel loaded;
  // What this rank resolved (paths, format, fingerprint, device, precision), filled once at load:
  // the one source of operator_models, table_description, model_description and
  // cache_numerics_suffix. model_name: as the first operator using the model gave it.
  OperatorModelInfo info;
  std::optional<ClipTokenizer> hf_tokenizer;         // CLIP operators (CLIPProcessor semantics)
  std::optional<ClipTokenizer> official_tokenizer;   // Long-CLIP operator
  std::optional<ClipTokenizer> open_clip_tokenizer;  // open_clip models, every operator
};

ModelBank::ModelBank(const std::vector<OperatorSpec>& ops, const ModelBankOptions& options) {
  std::map<std::tuple<std::string, std::string, int, std::string, std::string>, int> model_index;
  std::map<std::pair<int, std::string>, int> image_index, text_index;
  for (const OperatorSpec& op : ops) {
    // An operator's own device means this rank's GPU, decided where the run's device is.
    const std::string device = op.device.empty()
                                   ? options.device
                                   : resolve_device(op.device, options.local_rank, options.host);
    const std::string precision =
        resolve_precision(op.kind, op.precision.empty() ? options.precision : op.precision,
                          device == "auto" ? torch::cuda::is_available()  // as load_model decides
                                           : device.rfind("cuda", 0) == 0);
    const auto path = resolve_model_path(op.model_name, options.models_dir);
    const ModelFamily family = op.is_long_clip() ? ModelFamily::kLongClip : ModelFamily::kClip;
    const auto key = std::make_tuple(std::filesystem::absolute(path).lexically_normal().string(),
                                     device, static_cast<int>(family), op.architecture, precision);
    auto [it, inserted] = model_index.emplace(key, static_cast<int>(models_.size()));
    if (inserted) {
      auto model = std::make_unique<Model>();
      ModelRequest request;
      request.name_or_path = path.string();
      request.family = family;
      request.models_dir = options.models_dir;
      request.device = device == "auto" ? "" : device;
      request.precision = precision;
      request.architecture = op.architecture;
      model->loaded = load_model(request);
      model->info = resolved_info(model->loaded, op.model_name);
      models_.push_back(std::move(model));
    }
    const int m = it->second;
    Model& model = *models_[m];
    op_names_.emplace_back(operator_name(op.kind), op.model_name);
    const ClipDims& dims = model.loaded.dims;

    ImageSpace is;
    is.model = m;
    TextSpace ts;
    ts.model = m;
    ts.context_length = static_cast<int>(dims.context_length);
    if (model.loaded.open_clip) {
      // An open_clip model runs with open_clip's pipeline whatever the operator (its eval
      // transform and its tokenizer are part of the model).
      const OpenClipPreprocess& oc = *model.loaded.open_clip;
      is.spec = open_clip_preprocess(static_cast<int>(oc.image_size), oc.mean, oc.std);
      is.pipeline = "oc" + std::to_string(is.spec.size);
      if (is.spec.mean != PreprocessSpec{}.mean || is.spec.std != PreprocessSpec{}.std)
        is.pipeline += "-" + normalization_tag(is.spec);
      ts.flavor = TokenizerFlavor::kOpenClip;
      ts.pipeline = "oc" + std::to_string(ts.context_length);
      if (!model.open_clip_tokenizer)
        model.open_clip_tokenizer = ClipTokenizer::bundled(TokenizerFlavor::kOpenClip);
    } else {
      is.spec.size = static_cast<int>(dims.image_resolution);
      is.spec.rounding = op.is_long_clip() ? CropRounding::kHalfToEven : CropRounding::kFloor;
      is.pipeline = (op.is_long_clip() ? "tv" : "hf") + std::to_string(is.spec.size);
      if (op.is_long_clip()) {
        ts.flavor = TokenizerFlavor::kOpenAI;
        ts.split_join = true;
        ts.pipeline = "longclip" + std::to_string(ts.context_length);
        if (!model.official_tokenizer)
          model.official_tokenizer = ClipTokenizer::bundled(TokenizerFlavor::kOpenAI);
      } else {
        ts.flavor = TokenizerFlavor::kHuggingFaceFast;
        ts.pipeline = "hf" + std::to_string(ts.context_length);
        if (!model.hf_tokenizer) {
          model.hf_tokenizer =
              model.loaded.vocab_json && model.loaded.merges_txt
                  ? ClipTokenizer::from_hf_files(*model.loaded.vocab_json, *model.loaded.merges_txt,
                                                 TokenizerFlavor::kHuggingFaceFast)
                  : ClipTokenizer::bundled(TokenizerFlavor::kHuggingFaceFast);
        }
      }
    }
    auto [ii, new_image] =
        image_index.emplace(std::make_pair(m, is.pipeline), static_cast<int>(image_spaces_.size()));
    if (new_image) image_spaces_.push_back(is);
    op_image_space_.push_back(ii->second);

    auto [ti, new_text] =
        text_index.emplace(std::make_pair(m, ts.pipeline), static_cast<int>(text_spaces_.size()));
    if (new_text) text_spaces_.push_back(ts);
    op_text_space_.push_back(ti->second);
  }
}

ModelBank::~ModelBank() = default;

const std::string& ModelBank::model_id(int model) const {
  return models_.at(model)->loaded.fingerprint;
}

std::string ModelBank::model_description(int model) const {
  const OperatorModelInfo& m = models_.at(model)->info;
  return m.weights_file + " (" + m.format + ", " + m.device + ", " + m.precision + ")";
}

std::string ModelBank::cache_numerics_suffix(int model) const {
  const OperatorModelInfo& m = models_.at(model)->info;
  if (m.device_type == "cpu" && m.precision == "fp32") return "";
  return "@" + m.precision + "-" +
         (m.device_type == "cuda" || m.device_type == "cpu" ? m.device_type : "other");
}

std::vector<OperatorModelInfo> ModelBank::operator_models() const {
  std::vector<OperatorModelInfo> out;
  for (size_t op = 0; op < op_names_.size(); ++op) {
    OperatorModelInfo info = models_.at(image_spaces_.at(op_image_space_[op]).model)->info;
    info.op = op_names_[op].first;
    info.model_name = op_names_[op].second;  // this operator's spelling of the name
    out.push_back(std::move(info));
  }
  return out;
}

TableDescription ModelBank::table_description(int model) const {
  const OperatorModelInfo& m = models_.at(model)->info;
  TableDescription d;
  d.model_name = m.model_name;
  d.model_path = m.weights_file;
  d.model_format = m.format;
  d.fingerprint = m.fingerprint;
  d.precision = m.precision;
  d.normalized = 1;  // encode_images / encode_texts return L2-normalised embeddings
  return d;
}

TokenizedText ModelBank::tokenize(int text_space, std::string_view caption) const {
  const TextSpace& ts = text_spaces_.at(text_space);
  const Model& model = *models_[ts.model];
  if (ts.split_join) {
    return model.official_tokenizer->tokenize(python_split_join(caption), ts.context_length);
  }
  if (ts.flavor == TokenizerFlavor::kOpenClip)
    return model.open_clip_tokenizer->tokenize(caption, ts.context_length);
  return model.hf_tokenizer->tokenize(caption, ts.context_length);
}

namespace {
at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(1e-12);
}
}  // namespace

at::Tensor ModelBank::encode_images(int image_space, const at::Tensor& images) {
  c10::InferenceMode guard;
  Model& model = *models_[image_spaces_.at(image_space).model];
  return l2_normalize(model.loaded.model->encode_image(images));
}

at::Tensor ModelBank::encode_texts(int text_space, const at::Tensor& ids) {
  c10::InferenceMode guard;
  Model& model = *models_[text_spaces_.at(text_space).model];
  return l2_normalize(model.loaded.model->encode_text(ids));
}

bool ModelBank::uses_cuda() const {
  for (const auto& m : models_)
    if (m->loaded.model->placement().device.is_cuda()) return true;
  return false;
}

}  // namespace clipshard
