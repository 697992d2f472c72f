// The config tables (shard/config_fields.h): each component reads its own keys with its own
// defaults, the run's result fingerprint stays byte-identical to the one existing run directories
// hold in state.json, and docs/CONFIG.md states the structs' defaults.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "driver/run_config.h"

namespace clipshard {
namespace {

using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// Every setting parse_run_config fills, the same dump for every version of RunConfig's layout (the
// fixture's "parsed" was written by the code before the options structs were embedded).
json parsed_dump(const RunConfig& c) {
  json ops = json::array();
  for (const auto& op : c.pipeline) {
    json o = to_fingerprint_json(op);
    o["device"] = op.device;
    o["merge"] = to_merge_settings_json(op);
    ops.push_back(o);
  }
  const auto& p = c.processing;
  json reuse = json::array();
  for (const auto& r : p.cache.reuse) reuse.push_back(r.string());
  return {{"inputs", c.inputs},
          {"output_dir", c.output_dir},
          {"image_root", p.source.image_root.string()},
          {"enforce_image_root", p.source.enforce_image_root},
          {"models_dir", c.models_dir},
          {"device", c.device},
          {"precision", c.precision},
          {"batch_size", p.batch_size},
          {"lines_per_shard", c.lines_per_shard},
          {"decode_threads", p.decode_threads},
          {"torch_threads", c.torch_threads},
          {"prefetch_batches", p.prefetch_batches},
          {"max_image_pixels", p.decode.max_pixels},
          {"reduced_decode", p.decode.reduced_decode},
          {"cache_enabled", p.cache.write},
          {"cache_lossy_fp16", p.cache.lossy_fp16},
          {"cache_reuse", reuse},
          {"has_step_files", c.has_step_files},
          // Only read with has_step_files (the earlier code left them empty without it).
          {"step_cache_path", c.has_step_files ? c.step_files.cache_path : ""},
          {"step_prefix", c.has_step_files ? c.step_files.file_name_prefix : ""},
          {"webdataset_output", c.webdataset_output},
          {"progress_interval_s", c.progress_interval_s},
          {"worker_timeout_s", c.worker_timeout_s},
          {"pipeline", ops}};
}

TEST(ConfigFields, FingerprintOfTheDefaultsIsPinned) {
  // Written by the code before the options structs (and in every state.json of a default run).
  const json config = {{"input", "m.jsonl"},
                       {"output_dir", "out"},
                       {"pipeline", {{{"operator", "ImageClipFilter"}, {"threshold", 0.3}}}}};
  EXPECT_EQ(
      result_fingerprint(parse_run_config(config)).dump(),
      R"({"batch_size":32,"device":"auto","enforce_image_root":false,"image_root":"",)"
      R"("lossy_fp16_cache":false,"max_image_pixels":178956970,"pipeline":[{"input_image_key":)"
      R"("image","input_text_key":"caption","model_name":"openai/clip-vit-base-patch32",)"
      R"("operator":"ImageClipFilter"}],"reduced_decode":false})");
}

// tests/fixtures/config/fingerprints.jsonl: 60 configs (4 by hand, every key set in one; 56
// drawn at random) with the fingerprint, merge settings and parsed settings the code before the
// options structs gave them (tests/fixtures/PROVENANCE.md).
TEST(ConfigFields, FingerprintsAndSettingsEqualThePinnedOnes) {
  std::ifstream in(CLIPSHARD_FIXTURES "/config/fingerprints.jsonl");
  ASSERT_TRUE(in) << "missing tests/fixtures/config/fingerprints.jsonl";
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const json record = json::parse(line);
    const RunConfig c = parse_run_config(record["config"]);
    EXPECT_EQ(result_fingerprint(c).dump(), record["fingerprint"].get<std::string>()) << line;
    EXPECT_EQ(merge_settings(c).dump(), record["merge_settings"].get<std::string>()) << line;
    EXPECT_EQ(parsed_dump(c), record["parsed"]) << line;
    ++n;
  }
  EXPECT_EQ(n, 60);
}

TEST(ConfigFields, EveryKeyIsOwnedOnce) {
  std::set<std::string> keys;
  for (const auto& f : run_config_fields()) EXPECT_TRUE(keys.insert(f.key).second) << f.key;
  EXPECT_EQ(keys, (std::set<std::string>{"input",
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
                                         "comment"}));
}

TEST(ConfigFields, ComponentsReadTheirOwnKeysWithTheirOwnDefaults) {
  const DecodeOptions decode_defaults;
  const auto decode = json{{"reduced_decode", true}}.get<DecodeOptions>();
  EXPECT_TRUE(decode.reduced_decode);
  EXPECT_EQ(decode.max_pixels, decode_defaults.max_pixels);
  EXPECT_EQ(json({{"max_image_pixels", 100}}).get<DecodeOptions>().max_pixels, 100);
  EXPECT_EQ(error_of([] {
              json{{"max_image_pixels", 0}}.get<DecodeOptions>();
            }),
            "config key \"max_image_pixels\": must be between 1 and 1099511627776, got 0");
  EXPECT_NE(error_of([] {
              json{{"batch_size", 8}}.get<DecodeOptions>();
            }).find("unknown config key \"batch_size\" (known: max_image_pixels, reduced_decode)"),
            std::string::npos);

  const auto source =
      json{{"image_root", "/img"}, {"enforce_image_root", true}}.get<ImageSourceOptions>();
  EXPECT_EQ(source.image_root, "/img");
  EXPECT_TRUE(source.enforce_image_root);
  EXPECT_EQ(source.max_file_bytes, ImageSourceOptions{}.max_file_bytes);
  EXPECT_EQ(json({{"image_root", nullptr}}).get<ImageSourceOptions>().image_root, "");

  const auto cache = json{{"enabled", false}, {"reuse", "a.h5"}}.get<EmbeddingCacheOptions>();
  EXPECT_FALSE(cache.write);
  EXPECT_FALSE(cache.lossy_fp16);
  ASSERT_EQ(cache.reuse.size(), 1u);
  EXPECT_EQ(cache.reuse[0], "a.h5");

  // ClipProcessorOptions: its own keys, its components' beside them, embedding_cache nested.
  const auto processing = json::parse(R"({"batch_size": 8, "image_root": "r", "reduced_decode":
      true, "embedding_cache": {"lossy_fp16": true}})")
                              .get<ClipProcessorOptions>();
  const ClipProcessorOptions defaults;
  EXPECT_EQ(processing.batch_size, 8);
  EXPECT_EQ(processing.prefetch_batches, defaults.prefetch_batches);
  EXPECT_EQ(processing.decode_threads, defaults.decode_threads);
  EXPECT_EQ(processing.source.image_root, "r");
  EXPECT_TRUE(processing.decode.reduced_decode);
  EXPECT_EQ(processing.decode.max_pixels, defaults.decode.max_pixels);
  EXPECT_TRUE(processing.cache.lossy_fp16);
  EXPECT_TRUE(processing.cache.write);
  EXPECT_EQ(error_of([] {
              json{{"embedding_cache", {{"lossy", 1}}}}.get<ClipProcessorOptions>();
            }).rfind("unknown config key \"embedding_cache.lossy\"", 0),
            0u);
  EXPECT_EQ(error_of([] {
              json{{"embedding_cache", 1}}.get<ClipProcessorOptions>();
            }),
            "config key \"embedding_cache\": must be an object");

  // The run config embeds them whole: parsing the same keys there gives the same struct.
  RunConfig run = parse_run_config(json::parse(R"({"input": "m", "output_dir": "o",
      "pipeline": [{"operator": "ImageCLIPEvaluator"}], "batch_size": 8, "image_root": "r",
      "reduced_decode": true, "embedding_cache": {"lossy_fp16": true}})"));
  const auto& fields = clip_processor_config_fields();
  EXPECT_EQ(config_values(fields, run.processing), config_values(fields, processing));
}

// docs/CONFIG.md's table of keys: `| \`key\` | default | meaning |`. The default cell, without
// backticks and without what follows " (" or " =" (`0 = auto`, `"" (off)`), as JSON; cells that
// are not JSON ("required", "—") are skipped.
std::map<std::string, json> documented_defaults() {
  std::ifstream in(CLIPSHARD_SOURCE_DIR "/docs/CONFIG.md");
  EXPECT_TRUE(in) << "missing docs/CONFIG.md";
  std::map<std::string, json> out;
  const std::regex row(R"(^\| `([a-z_.0-9]+)` \| ([^|]*) \|)");
  std::string line;
  bool in_config_section = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_config_section = line == "## Config file";
    std::smatch m;
    if (!in_config_section || !std::regex_search(line, m, row)) continue;
    std::string cell = m[2].str();
    cell.erase(std::remove(cell.begin(), cell.end(), '`'), cell.end());
    for (const char* cut : {" (", " ="})
      if (auto at = cell.find(cut); at != std::string::npos) cell.resize(at);
    const json value = json::parse(cell, nullptr, false);
    if (!value.is_discarded()) out[m[1].str()] = value;
  }
  return out;
}

TEST(ConfigFields, ConfigMdStatesTheStructsDefaults) {
  const json defaults = config_values(run_config_fields(), RunConfig{});
  const auto documented = documented_defaults();
  for (const auto& [key, value] : documented) {
    // "embedding_cache.enabled": a key of the object embedding_cache.
    const json* actual = &defaults;
    std::string rest = key;
    while (true) {
      const auto dot = rest.find('.');
      const std::string part = rest.substr(0, dot);
      ASSERT_TRUE(actual->contains(part)) << "docs/CONFIG.md documents an unknown key " << key;
      actual = &(*actual)[part];
      if (dot == std::string::npos) break;
      rest = rest.substr(dot + 1);
    }
    EXPECT_EQ(*actual, value) << "docs/CONFIG.md's default of " << key << " is " << value
                              << ", the struct's " << *actual;
  }
  // The numbers that were stated twice before the options structs, at least, are checked.
  for (const std::string key :
       {"batch_size", "prefetch_batches", "max_image_pixels", "lines_per_shard", "decode_threads",
        "reduced_decode", "embedding_cache.enabled", "embedding_cache.lossy_fp16"})
    EXPECT_TRUE(documented.count(key)) << key << ": no default found in docs/CONFIG.md";
  // And every key a config accepts is documented.
  std::ifstream in(CLIPSHARD_SOURCE_DIR "/docs/CONFIG.md");
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& f : run_config_fields())
    EXPECT_NE(text.str().find("| `" + f.key), std::string::npos) << f.key << " is not documented";
  // step_files' defaults are written out in its row's meaning.
  const StepFilesConfig step_files;
  EXPECT_NE(text.str().find("{\"cache_path\": \"" + step_files.cache_path +
                            "\", \"file_name_prefix\": \"" + step_files.file_name_prefix +
                            "\"}` (both optional, defaults shown)"),
            std::string::npos);
}

}  // namespace
}  // namespace clipshard
