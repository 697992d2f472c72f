// What a ClipShardProcessor runs with (clip_shard_processor.h), apart from its operators and
// models: batching, the image source and decoder settings, the embedding cache, and the config keys
// of each. Kept apart from the processor so that the run config (driver/run_config.h) embeds them
// without including Torch.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "models/image/image_decoder.h"
#include "shard/config_fields.h"
#include "worker/image_source.h"

namespace clipshard {

struct EmbeddingCacheOptions {
  // Write per-shard embedding parts (merged into embeddings.h5). The config's
  // `embedding_cache.enabled`, with which make_clip_processor also reuses the run directory's own
  // embeddings.h5.
  bool write = true;
  bool lossy_fp16 = false;  // store fp16 (half the size; reused scores then differ slightly)
  std::vector<std::filesystem::path> reuse;  // existing embeddings.h5 files to reuse from
};

struct ClipProcessorOptions {
  int batch_size = 32;  // images (and captions) per inference batch
  // Decode + preprocess threads; 0 = automatic: make_clip_processor picks it from the worker's
  // device and CPU budget (a processor given 0 uses 1).
  int decode_threads = 0;
  int prefetch_batches = 2;  // batches decoded ahead of the one being inferred
  ImageSourceOptions source;
  DecodeOptions decode;
  EmbeddingCacheOptions cache;
};

// The config keys of EmbeddingCacheOptions (docs/CONFIG.md, the object `embedding_cache`):
// `enabled` (write), `lossy_fp16` (in the result fingerprint as "lossy_fp16_cache": it changes the
// embeddings reused) and `reuse` (a path or a list of paths).
const ConfigFields<EmbeddingCacheOptions>& embedding_cache_config_fields();
// The config keys of ClipProcessorOptions, at the top level of a run config: `batch_size` (1 ..
// 65536, in the result fingerprint: batches are formed from the input alone, and their
// composition changes the numerics), `decode_threads` (0 .. 1024), `prefetch_batches` (0 .. 64),
// the keys of image_source_config_fields and decode_config_fields beside them, and the object
// `embedding_cache`.
const ConfigFields<ClipProcessorOptions>& clip_processor_config_fields();
// Read an object holding only those keys (read_config_object: others are errors naming them).
void from_json(const nlohmann::json& object, EmbeddingCacheOptions& options);
void from_json(const nlohmann::json& object, ClipProcessorOptions& options);

}  // namespace clipshard
