// Reliability: bad configs, command lines and model files. Each is refused by the real binary before
// any work: exit status 1 (2 for a bad command line), a message on stderr that names the key or
// the file, and no output in the run directory (no output.jsonl, errors.jsonl, summary.json or
// finished shard). After a model error, the corrected command runs as a new run (no --restart).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/test_paths.h"
#include "shard/atomic_file.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
  int status = -1;
  std::string log;
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Result clipshard(const std::vector<std::string>& args, const fs::path& log_file) {
  std::string cmd = quote(testing::clipshard_binary().string());
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " > " + quote(log_file.string()) + " 2>&1";
  const int raw = std::system(cmd.c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.log = read_file(log_file);
  return r;
}

class ConfigErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path img = tmp_.path() / "img.jpg";
    fs::copy_file(testing::fixtures() / "images" / "photo_640x480.jpg", img);
    std::ofstream(tmp_.path() / "m.jsonl")
        << "{\"image\": \"img.jpg\", \"caption\": \"a photo\"}\n"
        << "{\"image\": \"img.jpg\", \"caption\": \"another photo\"}\n";
  }

  json base(const std::string& out) const {
    return {{"input", (tmp_.path() / "m.jsonl").string()},
            {"output_dir", (tmp_.path() / out).string()},
            {"device", "cpu"},
            {"progress_interval_s", 0},
            {"pipeline",
             {{{"operator", "ImageCLIPEvaluator"},
               {"model_name", (testing::fixtures() / "models" / "tiny" / "hf").string()},
               {"input_image_key", "image"},
               {"input_text_key", "caption"}}}}};
  }

  // Writes `text` as a config file and runs `clipshard run FILE EXTRA...`.
  Result run_text(const std::string& name, const std::string& text,
                  const std::vector<std::string>& extra = {}) {
    const fs::path file = tmp_.path() / (name + ".json");
    std::ofstream(file) << text;
    std::vector<std::string> args = {"run", file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return clipshard(args, tmp_.path() / (name + ".log"));
  }

  // The run directory holds no result of any kind.
  void expect_no_output(const std::string& out) const {
    const fs::path dir = tmp_.path() / out;
    for (const char* f : {"output.jsonl", "errors.jsonl", "summary.json", "embeddings.h5"})
      EXPECT_FALSE(fs::exists(dir / f)) << dir / f;
    if (fs::exists(dir / "parts")) {
      EXPECT_TRUE(fs::is_empty(dir / "parts")) << dir / "parts";
    }
  }

  // Runs a config changed by `edit`: exit `status`, stderr containing `message`, no output.
  void expect_refused(const std::string& name, const std::function<void(json&)>& edit,
                      const std::string& message, int status = 1) {
    json c = base("run-" + name);
    edit(c);
    const Result r = run_text(name, c.dump(1));
    EXPECT_EQ(r.status, status) << name << ": " << r.log;
    EXPECT_NE(r.log.find(message), std::string::npos)
        << name << ": expected \"" << message << "\" in: " << r.log;
    expect_no_output("run-" + name);
    ++cases_;
  }

  testing::TempDir tmp_;
  int cases_ = 0;
};

TEST_F(ConfigErrors, BadKeysTypesAndValuesNameTheKey) {
  expect_refused(
      "unknown_key", [](json& c) { c["batchsize"] = 8; }, "unknown config key \"batchsize\"");
  expect_refused(
      "unknown_nested_key",
      [](json& c) {
        c["embedding_cache"] = {{"enable", true}};
      },
      "unknown config key \"embedding_cache.enable\"");
  expect_refused(
      "unknown_param", [](json& c) { c["pipeline"][0]["treshold"] = 0.3; },
      "unknown parameter \"treshold\"");
  expect_refused(
      "unknown_operator", [](json& c) { c["pipeline"][0]["operator"] = "ClipScore"; },
      "unknown operator \"ClipScore\"");
  expect_refused(
      "batch_string", [](json& c) { c["batch_size"] = "8"; },
      "\"batch_size\": must be an integer, got string");
  expect_refused(
      "batch_float", [](json& c) { c["batch_size"] = 8.5; }, "\"batch_size\": must be an integer");
  expect_refused(
      "batch_negative", [](json& c) { c["batch_size"] = -4; }, "\"batch_size\": must be between 1");
  expect_refused(
      "batch_zero", [](json& c) { c["batch_size"] = 0; }, "\"batch_size\": must be between 1");
  expect_refused(
      "shard_zero", [](json& c) { c["lines_per_shard"] = 0; },
      "\"lines_per_shard\": must be between 1");
  expect_refused(
      "pixels_negative", [](json& c) { c["max_image_pixels"] = -1; },
      "\"max_image_pixels\": must be between 1");
  expect_refused(
      "threads_negative", [](json& c) { c["decode_threads"] = -2; },
      "\"decode_threads\": must be between 0");
  expect_refused(
      "prefetch_huge", [](json& c) { c["prefetch_batches"] = 100000; },
      "\"prefetch_batches\": must be between 0 and 64");
  expect_refused(
      "progress_negative", [](json& c) { c["progress_interval_s"] = -1; },
      "\"progress_interval_s\": must be >= 0");
  expect_refused(
      "timeout_zero", [](json& c) { c["worker_timeout_s"] = 0; },
      "\"worker_timeout_s\": must be >= 1");
  expect_refused(
      "enforce_string", [](json& c) { c["enforce_image_root"] = "yes"; },
      "\"enforce_image_root\": must be true or false");
  expect_refused(
      "device_tpu", [](json& c) { c["device"] = "tpu"; }, "\"device\": must be");
  expect_refused(
      "cache_bool", [](json& c) { c["embedding_cache"] = true; },
      "\"embedding_cache\": must be an object");
  expect_refused(
      "input_number", [](json& c) { c["input"] = 3; },
      "\"input\": must be a string or a list of strings");
  expect_refused(
      "input_empty", [](json& c) { c["input"] = json::array(); },
      "\"input\": at least one input manifest is required");
  expect_refused(
      "output_missing", [](json& c) { c.erase("output_dir"); }, "\"output_dir\": is required");
  expect_refused(
      "pipeline_empty", [](json& c) { c["pipeline"] = json::array(); },
      "\"pipeline\": must be a non-empty list");
  expect_refused(
      "step_not_object", [](json& c) { c["pipeline"][0] = "ImageCLIPEvaluator"; },
      "a pipeline step must be a JSON object");
  expect_refused(
      "model_number", [](json& c) { c["pipeline"][0]["model_name"] = 5; },
      "parameter \"model_name\" must be a string, got number");
  expect_refused(
      "key_empty", [](json& c) { c["pipeline"][0]["input_image_key"] = ""; },
      "parameter \"input_image_key\" must not be empty");
  auto filter = [](json& c) {
    c["pipeline"][0] = {{"operator", "ImageClipFilter"},
                        {"model_name", (testing::fixtures() / "models/tiny/hf").string()}};
  };
  expect_refused(
      "threshold_string",
      [&](json& c) {
        filter(c);
        c["pipeline"][0]["threshold"] = "high";
      },
      "parameter \"threshold\" must be a number, got string");
  expect_refused(
      "top_fraction_negative",
      [&](json& c) {
        filter(c);
        c["pipeline"][0]["top_fraction"] = -0.1;
      },
      "top_fraction must be in (0, 1]");
  expect_refused(
      "top_fraction_big",
      [&](json& c) {
        filter(c);
        c["pipeline"][0]["top_fraction"] = 1.5;
      },
      "top_fraction must be in (0, 1]");
  expect_refused(
      "input_matches_nothing",
      [&](json& c) { c["input"] = (tmp_.path() / "nothing*.jsonl").string(); }, "nothing*.jsonl");
  std::cout << cases_ << " bad configs refused\n";
}

TEST_F(ConfigErrors, BadFilesAndCommandLines) {
  const json good = base("run-cli");
  Result r = run_text("not_json", "{\"input\": \"m.jsonl\",");
  EXPECT_EQ(r.status, 1) << r.log;
  EXPECT_NE(r.log.find("is not valid JSON"), std::string::npos) << r.log;
  r = run_text("array", "[1, 2]");
  EXPECT_EQ(r.status, 1) << r.log;
  EXPECT_NE(r.log.find("the config must be a JSON object"), std::string::npos) << r.log;
  r = clipshard({"run", (tmp_.path() / "no_such_config.json").string()}, tmp_.path() / "nc.log");
  EXPECT_EQ(r.status, 1) << r.log;
  EXPECT_NE(r.log.find("cannot read config file"), std::string::npos) << r.log;
  r = run_text("bad_set", good.dump(), {"--set", "batch_size"});
  EXPECT_EQ(r.status, 1) << r.log;
  EXPECT_NE(r.log.find("--set expects KEY=VALUE"), std::string::npos) << r.log;
  r = run_text("bad_set_value", good.dump(), {"--set", "batch_size=-3"});
  EXPECT_EQ(r.status, 1) << r.log;
  EXPECT_NE(r.log.find("\"batch_size\": must be between 1"), std::string::npos) << r.log;
  r = run_text("unknown_flag", good.dump(), {"--bogus-flag"});
  EXPECT_EQ(r.status, 2) << r.log;
  r = clipshard({"run", "--op", "ImageCLIPEvaluator"}, tmp_.path() / "partial.log");
  EXPECT_EQ(r.status, 2) << r.log;
  expect_no_output("run-cli");
}

// Model files broken in the ways downloads and disks break them.
class ModelErrors : public ConfigErrors {
 protected:
  void SetUp() override {
    ConfigErrors::SetUp();
    const fs::path tiny = testing::fixtures() / "models" / "tiny" / "hf";
    // safetensors cut short.
    fs::copy(tiny, tmp_.path() / "truncated");
    fs::resize_file(tmp_.path() / "truncated" / "model.safetensors", 5000);
    // safetensors whose header claims a tensor 1 GB past the end of the file.
    fs::copy(tiny, tmp_.path() / "lying");
    {
      const fs::path st = tmp_.path() / "lying" / "model.safetensors";
      std::string bytes = read_file(st);
      uint64_t n = 0;
      for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(bytes[i]);
      json header = json::parse(bytes.substr(8, n));
      for (auto& [name, t] : header.items())
        if (name != "__metadata__")
          t["data_offsets"][1] = t["data_offsets"][1].get<int64_t>() + 1000000000;
      // Offsets are relative to the data section, which follows the (longer) header.
      const std::string h = header.dump();
      std::string length(8, '\0');
      for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((h.size() >> (8 * i)) & 0xFF);
      write_file_atomically(st, length + h + bytes.substr(8 + n));
    }
    // A corrupt header (garbage JSON).
    fs::copy(tiny, tmp_.path() / "garbage");
    {
      const fs::path st = tmp_.path() / "garbage" / "model.safetensors";
      std::string bytes = read_file(st);
      for (size_t i = 8; i < 40; ++i) bytes[i] = '#';
      write_file_atomically(st, bytes);
    }
    // A torch.save (zip) checkpoint cut short, and one with its central directory zeroed.
    const std::string pt = read_file(testing::fixtures() / "models" / "longclip-tiny" / "model.pt");
    write_file_atomically(tmp_.path() / "cut.pt", pt.substr(0, pt.size() / 3));
    std::string zeroed = pt;
    for (size_t i = zeroed.size() - 200; i < zeroed.size(); ++i) zeroed[i] = 0;
    write_file_atomically(tmp_.path() / "zeroed.pt", zeroed);
    // A Hugging Face directory without weights, and a text file posing as a checkpoint.
    fs::create_directories(tmp_.path() / "empty_model");
    fs::copy_file(tiny / "config.json", tmp_.path() / "empty_model" / "config.json");
    write_file_atomically(tmp_.path() / "text.pt", "version https://git-lfs.github.com/spec/v1\n");
  }

  void expect_model_refused(const std::string& name, const std::string& op,
                            const std::string& model, const std::string& message) {
    expect_refused(
        name,
        [&](json& c) {
          c["pipeline"][0]["operator"] = op;
          c["pipeline"][0]["model_name"] = model;
        },
        message);
    // The corrected command is a new run in the same directory: no --restart, no refusal.
    json c = base("run-" + name);
    const Result r = run_text(name + "-fixed", c.dump(1));
    EXPECT_EQ(r.status, 0) << name << " then fixed: " << r.log;
    EXPECT_TRUE(fs::exists(tmp_.path() / ("run-" + name) / "output.jsonl")) << name;
  }
};

TEST_F(ModelErrors, BrokenOrWrongModelsAreRefusedBeforeAnyWork) {
  const std::string clip = "ImageCLIPEvaluator", longclip = "ImageLongCLIPEvaluator";
  const std::string d = tmp_.path().string() + "/";
  expect_model_refused("missing", clip, d + "no/such/model", "no/such/model");
  expect_model_refused("truncated", clip, d + "truncated", "truncated");
  expect_model_refused("lying", clip, d + "lying", "outside the data section");
  expect_model_refused("garbage", clip, d + "garbage", "garbage/model.safetensors");
  expect_model_refused("cut_zip", longclip, d + "cut.pt", "cut.pt");
  expect_model_refused("zeroed_zip", longclip, d + "zeroed.pt", "zeroed.pt");
  expect_model_refused("no_weights", clip, d + "empty_model", "empty_model");
  expect_model_refused("lfs_pointer", longclip, d + "text.pt", "text.pt");
  // A plain CLIP model for the Long-CLIP operator (context 77, not 248), and the reverse.
  expect_model_refused("clip_for_longclip", longclip,
                       (testing::fixtures() / "models" / "tiny" / "hf").string(),
                       "is a plain CLIP model");
  expect_model_refused("longclip_for_clip", clip,
                       (testing::fixtures() / "models" / "longclip-tiny" / "model.pt").string(),
                       "is a LongCLIP model");
  std::cout << cases_ << " broken or wrong models refused\n";
}

}  // namespace
}  // namespace clipshard
