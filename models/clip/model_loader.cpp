#include "models/clip/model_loader.h"

#include <torch/torch.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace clipshard {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string read_text_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ModelError("cannot read " + file.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// models--ORG--NAME/snapshots/<rev>: refs/main's revision when it exists, else the most recently
// modified snapshot.
std::optional<fs::path> hf_cache_snapshot(const fs::path& repo_dir) {
  std::error_code ec;
  if (!fs::is_directory(repo_dir / "snapshots", ec)) return std::nullopt;
  if (is_file(repo_dir / "refs" / "main")) {
    std::string rev = read_text_file(repo_dir / "refs" / "main");
    rev.erase(
        std::remove_if(rev.begin(), rev.end(), [](unsigned char c) { return std::isspace(c); }),
        rev.end());
    const fs::path snap = repo_dir / "snapshots" / rev;
    if (!rev.empty() && fs::is_directory(snap, ec)) return snap;
  }
  std::optional<fs::path> best;
  fs::file_time_type best_time{};
  for (const auto& entry : fs::directory_iterator(repo_dir / "snapshots", ec)) {
    if (!entry.is_directory(ec)) continue;
    const auto t = entry.last_write_time(ec);
    if (!best || t > best_time || (t == best_time && entry.path() < *best)) {
      best = entry.path();
      best_time = t;
    }
  }
  return best;
}

std::string family_name(ModelFamily f) {
  switch (f) {
    case ModelFamily::kAny:
      return "any";
    case ModelFamily::kClip:
      return "CLIP";
    case ModelFamily::kLongClip:
      return "LongCLIP";
  }
  return "?";
}

}  // namespace

const char* model_format_name(ModelFormat format) {
  switch (format) {
    case ModelFormat::kHuggingFaceDir:
      return "huggingface-dir";
    case ModelFormat::kOpenAIStateDict:
      return "openai-state-dict";
    case ModelFormat::kOpenAITorchScript:
      return "openai-torchscript";
    case ModelFormat::kLongClipCheckpoint:
      return "longclip-checkpoint";
    case ModelFormat::kHuggingFaceFile:
      return "huggingface-file";
    case ModelFormat::kOpenClipDir:
      return "open_clip-dir";
    case ModelFormat::kOpenClipStateDict:
      return "open_clip-state-dict";
  }
  return "?";
}

fs::path resolve_model_path(const std::string& name, const fs::path& models_dir) {
  if (name.empty()) throw ModelError("empty model name or path");
  std::vector<std::string> looked;
  auto try_path = [&looked](const fs::path& p) -> bool {
    looked.push_back(p.string());
    return path_exists(p);
  };
  fs::path as_path = name;
  if (name.rfind("~/", 0) == 0 && !env("HOME").empty())
    as_path = fs::path(env("HOME")) / name.substr(2);
  if (try_path(as_path)) return as_path;

  std::string dashed = name;
  for (size_t pos = 0; (pos = dashed.find('/', pos)) != std::string::npos;)
    dashed.replace(pos, 1, "--");
  if (!models_dir.empty()) {
    if (try_path(models_dir / name)) return models_dir / name;
    if (dashed != name && try_path(models_dir / dashed)) return models_dir / dashed;
  } else {
    looked.push_back("<models_dir> (not set)");
  }

  // The Hugging Face hub cache: models--ORG--NAME/snapshots/<rev>/.
  std::vector<std::pair<std::string, fs::path>> roots;
  auto add_root = [&roots, &looked](const std::string& what, const std::string& dir) {
    if (dir.empty()) {
      looked.push_back(what + " (not set)");
      return;
    }
    roots.push_back({what, fs::path(dir)});
  };
  add_root("$HF_HUB_CACHE", env("HF_HUB_CACHE"));
  add_root("$HF_HOME/hub", env("HF_HOME").empty() ? "" : env("HF_HOME") + "/hub");
  add_root("$XDG_CACHE_HOME/huggingface/hub",
           env("XDG_CACHE_HOME").empty() ? "" : env("XDG_CACHE_HOME") + "/huggingface/hub");
  add_root("~/.cache/huggingface/hub",
           env("HOME").empty() ? "" : env("HOME") + "/.cache/huggingface/hub");
  if (!models_dir.empty()) roots.push_back({"models_dir", models_dir});
  const std::string repo = "models--" + dashed;
  for (const auto& [what, root] : roots) {
    const fs::path repo_dir = root / repo;
    looked.push_back((repo_dir / "snapshots" / "*").string() + " (" + what + ")");
    if (auto snap = hf_cache_snapshot(repo_dir)) return *snap;
  }
  std::string msg = "model '" + name + "' not found; looked at:";
  for (const auto& l : looked) msg += "\n  " + l;
  msg += "\nGive an existing path, set models_dir, or download the model into one of these places.";
  throw ModelError(msg);
}

std::optional<fs::path> find_checkpoint_in_dir(const fs::path& dir) {
  std::vector<fs::path> all, preferred;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::string fname = entry.path().filename().string();
    const std::string low = lower(fname);
    auto ends = [&fname](const std::string& ext) {
      return fname.size() >= ext.size() &&
             fname.compare(fname.size() - ext.size(), ext.size(), ext) == 0;
    };
    if (!(ends(".pt") || ends(".bin") || ends(".ckpt"))) continue;
    all.push_back(entry.path());
    if (low.find("longclip") != std::string::npos) preferred.push_back(entry.path());
  }
  auto& pick = preferred.empty() ? all : preferred;
  if (pick.empty()) return std::nullopt;
  // Sorted by file name in code point order, as Python's sorted(os.listdir(...)).
  std::sort(pick.begin(), pick.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  return pick.front();
}

std::string weights_fingerprint(const StateDict& openai, const ClipDims& d) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  auto feed = [state](const void* p, size_t n) { XXH3_128bits_update(state, p, n); };
  std::ostringstream cfg;
  cfg << "clipshard-weights-v1;act=" << static_cast<int>(d.activation) << ";eos=" << d.eos_token_id
      << ";vh=" << d.vision_heads << ";th=" << d.text_heads << ";eps=" << d.layer_norm_eps << ";";
  const std::string c = cfg.str();
  feed(c.data(), c.size());
  for (const auto& [name, tensor] : openai) {
    feed(name.data(), name.size() + 1);  // includes the terminating NUL as a separator
    const auto t = tensor.to(at::kFloat).contiguous();
    const int64_t ndim = t.dim();
    feed(&ndim, sizeof(ndim));
    feed(t.sizes().data(), sizeof(int64_t) * t.dim());
    feed(t.data_ptr(), t.numel() * sizeof(float));
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return hex;
}

namespace {

// The weights file of a layout directory: `<stem>` single file or `<stem>.index.json` (sharded),
// safetensors first, as transformers and open_clip prefer it.
std::optional<fs::path> layout_weights(const fs::path& dir, const std::string& safetensors,
                                       const std::string& bin) {
  for (const auto& name : {safetensors, safetensors + ".index.json", bin, bin + ".index.json"})
    if (is_file(dir / name)) return dir / name;
  return std::nullopt;
}

bool has_extension(const fs::path& file, const std::string& ext) {
  return lower(file.extension().string()) == ext;
}

}  // namespace

LoadedModel read_model_weights(const ModelRequest& request, StateDict& openai_out) {
  LoadedModel result;
  const fs::path path = resolve_model_path(request.name_or_path, request.models_dir);
  result.resolved_path = path;
  std::optional<fs::path> config_file, open_clip_config_file;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto hf = layout_weights(path, "model.safetensors", "pytorch_model.bin");
    const auto oc =
        layout_weights(path, "open_clip_model.safetensors", "open_clip_pytorch_model.bin");
    // A hub repository may hold both layouts of one model (e.g. LAION's): the Hugging Face one is
    // what DataFlow-MM's operators load, so it comes first.
    if (is_file(path / "config.json") && hf) {
      result.format = ModelFormat::kHuggingFaceDir;
      result.weights_file = *hf;
      config_file = path / "config.json";
    } else if (is_file(path / "open_clip_config.json") && oc) {
      result.format = ModelFormat::kOpenClipDir;
      result.weights_file = *oc;
      open_clip_config_file = path / "open_clip_config.json";
    } else if (oc) {
      result.weights_file = *oc;  // open_clip weights without their config: see below
    } else if (auto ck = find_checkpoint_in_dir(path)) {
      result.weights_file = *ck;
    } else {
      throw ModelError("model directory " + path.string() +
                       " holds neither config.json with model.safetensors/pytorch_model.bin "
                       "(Hugging Face), open_clip_config.json with open_clip_model.safetensors/"
                       "open_clip_pytorch_model.bin (open_clip) nor a .pt/.bin/.ckpt checkpoint");
    }
  } else {
    result.weights_file = path;
  }
  const fs::path& file = result.weights_file;
  const fs::path dir = fs::is_directory(path, ec) ? path : file.parent_path();
  if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) {
    result.vocab_json = dir / "vocab.json";
    result.merges_txt = dir / "merges.txt";
  }

  StateDict raw;
  bool torchscript = false;
  try {
    torchscript =
        !is_shard_index(file) && detect_checkpoint_format(file) == CheckpointFormat::kTorchScript;
    raw = read_checkpoint(file);
  } catch (const CheckpointError& e) {
    throw ModelError("cannot load model '" + request.name_or_path + "' from " + file.string() +
                     ": " + e.what());
  }
  const WeightsLayout layout = detect_layout(raw);
  StateDict openai = to_openai_layout(raw, layout, file.string());
  raw.clear();
  ClipDims dims = infer_dims(openai, file.string());
  auto refuse_architecture = [&](const std::string& what) {
    if (!request.architecture.empty())
      throw ModelError("architecture '" + request.architecture + "' was given for " +
                       file.string() + ", but " + what +
                       " carries its own architecture; remove the architecture setting");
  };
  if (layout == WeightsLayout::kHuggingFace) {
    if (!config_file && is_file(dir / "config.json")) config_file = dir / "config.json";
    refuse_architecture("a Hugging Face checkpoint");
    if (config_file) apply_hf_config(read_text_file(*config_file), config_file->string(), dims);
    if (result.format != ModelFormat::kHuggingFaceDir)
      result.format = ModelFormat::kHuggingFaceFile;
  } else if (open_clip_config_file) {
    refuse_architecture("an open_clip directory (open_clip_config.json)");
    const OpenClipConfig cfg = parse_open_clip_config(read_text_file(*open_clip_config_file),
                                                      open_clip_config_file->string());
    apply_open_clip_config(cfg, file.string(), dims);
    result.open_clip = cfg.preprocess;
  } else if (torchscript) {
    refuse_architecture("an OpenAI TorchScript archive");
    result.format = ModelFormat::kOpenAITorchScript;
  } else if (dims.long_context) {
    refuse_architecture("a LongCLIP checkpoint");
    result.format = ModelFormat::kLongClipCheckpoint;
  } else if (!request.architecture.empty()) {
    const OpenClipConfig cfg = resolve_open_clip_architecture(request.architecture);
    apply_open_clip_config(cfg, file.string(), dims);
    result.open_clip = cfg.preprocess;
    result.format = ModelFormat::kOpenClipStateDict;
  } else if (has_extension(file, ".pt") &&
             lower(file.filename().string()).rfind("open_clip", 0) != 0) {
    result.format = ModelFormat::kOpenAIStateDict;
  } else {
    // OpenAI and open_clip state dicts have the same tensor names; open_clip models differ in
    // activation and head count, which the tensors do not show (GELU files loaded as OpenAI give
    // silently wrong embeddings).
    throw ModelError(
        "cannot tell which model " + file.string() +
        " is: a bare CLIP state dict (OpenAI tensor names) without a config may be an open_clip "
        "model (GELU, its own head counts) or an OpenAI one. Set the operator's \"architecture\" "
        "to an open_clip model name (e.g. ViT-B-32-quickgelu for OpenAI's weights, ViT-H-14 for "
        "LAION's) or to an open_clip config file, or put open_clip_config.json next to it");
  }
  result.family = dims.long_context ? ModelFamily::kLongClip : ModelFamily::kClip;
  if (request.family != ModelFamily::kAny && request.family != result.family) {
    if (request.family == ModelFamily::kLongClip)
      throw ModelError("model '" + request.name_or_path + "' (" + file.string() +
                       ") is a plain CLIP model (no positional_embedding_res, text context " +
                       std::to_string(dims.context_length) +
                       "), but a LongCLIP model is required here; give a LongCLIP checkpoint "
                       "(e.g. longclip-L.pt)");
    throw ModelError("model '" + request.name_or_path + "' (" + file.string() +
                     ") is a LongCLIP model, but a " + family_name(request.family) +
                     " model is required here; use the LongCLIP operator for it");
  }
  check_state_dict(openai, dims, file.string());
  result.dims = dims;
  result.fingerprint = weights_fingerprint(openai, dims);
  openai_out = std::move(openai);
  return result;
}

LoadedModel load_model(const ModelRequest& request) {
  const DeviceChoice choice = resolve_device(request.device, request.precision);
  StateDict openai;
  LoadedModel result = read_model_weights(request, openai);
  result.model = ClipModel(result.dims);
  result.model->load_weights(openai, result.weights_file.string());
  openai.clear();
  result.model->eval();
  result.model->place(choice);
  return result;
}

}  // namespace clipshard
