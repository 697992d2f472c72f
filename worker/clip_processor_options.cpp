// The config tables of ClipProcessorOptions and EmbeddingCacheOptions.
#include "worker/clip_processor_options.h"

namespace clipshard {

const ConfigFields<EmbeddingCacheOptions>& embedding_cache_config_fields() {
  using O = EmbeddingCacheOptions;
  static const ConfigFields<O> fields = {
      config_field("enabled", &O::write, config_bool()),
      config_field("lossy_fp16", &O::lossy_fp16, config_bool()).in_fingerprint("lossy_fp16_cache"),
      config_field("reuse", &O::reuse, config_list_of<std::filesystem::path>()),
  };
  return fields;
}

const ConfigFields<ClipProcessorOptions>& clip_processor_config_fields() {
  using O = ClipProcessorOptions;
  static const ConfigFields<O> fields =
      ConfigFields<O>{
          config_field("batch_size", &O::batch_size, config_int(1, 65536)).in_fingerprint(),
          config_field("decode_threads", &O::decode_threads, config_int(0, 1024)),
          config_field("prefetch_batches", &O::prefetch_batches, config_int(0, 64)),
          config_object_field<O>(
              "embedding_cache", embedding_cache_config_fields(),
              [](auto& o) -> auto& { return o.cache; }),
      } +
      embedded_config_fields<O>(
          image_source_config_fields(), [](auto& o) -> auto& { return o.source; }) +
      embedded_config_fields<O>(
          decode_config_fields(), [](auto& o) -> auto& { return o.decode; });
  return fields;
}

void from_json(const nlohmann::json& object, EmbeddingCacheOptions& options) {
  read_config_object(embedding_cache_config_fields(), object, "", &options);
}

void from_json(const nlohmann::json& object, ClipProcessorOptions& options) {
  read_config_object(clip_processor_config_fields(), object, "", &options);
}

}  // namespace clipshard
