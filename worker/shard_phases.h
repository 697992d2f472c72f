// ClipShardProcessor's work on one shard, as named phases over one state (ShardState):
//
//   collect_rows  lines -> rows -> per operator an image file and a token sequence, deduplicated
//   embed_images  decode on the pool a few batches ahead, reuse cache, image tower batch by batch
//   embed_texts   the texts of rows whose image decoded: reuse cache, then length-sorted batches
//   score_rows    scores into the rows, filter similarities, error records, row keys
//   write_parts   embedding cache part, row keys, output/sims/errors, the done file last
//
// process_shard runs them in this order. Each phase reads what the earlier ones filled in and
// nothing else, and reaches the models only through EmbeddingModels, so tests drive each phase
// with a fake model. Batch compositions depend only on the input and the config (never on ranks
// or on earlier crashes): image batches in first-appearance order within the shard, text batches
// by token length with ties in first-appearance order.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shard/cache/content_key.h"
#include "shard/part_format.h"
#include "shard/row_keys.h"
#include "shard/run_directory.h"
#include "shard/shard_stats.h"
#include "shard/shard_task.h"
#include "worker/clip_shard_processor.h"
#include "worker/embedding_models.h"
#include "worker/image_source.h"
#include "worker/operator_spec.h"
#include "worker/shard_processor.h"
#include "worker/thread_pool.h"

namespace clipshard {

class EmbeddingCacheReader;

// The embeddings of earlier runs (EmbeddingCacheOptions::reuse), looked up by the decode threads
// and the text phase. Thread-safe.
class ReuseCache {
 public:
  // Opens those of `files` that exist (none: every lookup misses). Throws like
  // EmbeddingCacheReader for a file that exists but is not a readable cache.
  explicit ReuseCache(const std::vector<std::filesystem::path>& files);
  ~ReuseCache();
  ReuseCache(const ReuseCache&) = delete;
  ReuseCache& operator=(const ReuseCache&) = delete;

  // The embedding of `key` in `table` into *out (resized); false when absent (out untouched).
  bool lookup(const CacheTable& table, const ContentKey& key, std::vector<float>* out);
  // No cache file was opened: every lookup misses.
  bool empty() const { return !reader_; }

 private:
  std::unique_ptr<EmbeddingCacheReader> reader_;
  std::mutex mutex_;  // HDF5 is not thread-safe
};

// One distinct image (a file, or a member of the shard's tar) of the shard.
struct ImageFile {
  ImageRef ref;
  int64_t first_row = 0;    // global row id of the first row that uses it
  std::vector<char> needs;  // per image space: an operator of some row needs this embedding
  RowStatus status;         // embed_images: why it could not be read or decoded
  std::vector<std::vector<float>> emb;  // per image space: normalised embedding once known
  std::vector<char> reused;             // per image space: came from the reuse cache
  ContentKey key{};                     // embed_images: content key of the bytes
};

// One distinct token sequence of a text space.
struct TextItem {
  int space = 0;
  std::vector<int32_t> ids;
  int64_t first_row = 0;  // global row id of the first row that uses it
  ContentKey key{};       // content key of the ids
  bool needed = false;    // embed_texts: some row using it has an image that decoded
  bool reused = false;    // embed_texts: came from the reuse cache
  std::vector<float> emb;
};

// One operator's view of one row.
struct RowOp {
  int image = -1;  // index into ShardState::files; -1 when the row failed before (status)
  int text = -1;   // index into ShardState::texts
  RowStatus status;
  std::string key;  // the row key a failure is about
};

struct Row {
  int64_t line = 0;
  std::string sample;  // tar rows: the sample's key
  int64_t global_row = 0;
  Json object;             // score_rows adds the evaluators' scores
  std::vector<RowOp> ops;  // per pipeline operator
};

// What the phases of one shard fill in, in phase order.
struct ShardState {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::vector<Row> rows;            // collect_rows: the object rows, in line order
  std::vector<ImageFile> files;     // collect_rows: distinct images, first-appearance order
  std::vector<TextItem> texts;      // collect_rows: distinct (text space, ids), same order
  std::vector<ErrorRecord> errors;  // collect_rows: broken lines; score_rows: bad rows, then all
                                    // sorted by line
  std::vector<float> sims;          // score_rows: per row, one per filter operator
  std::vector<RowKeys> row_keys;    // score_rows: per row, one per operator (zeros: bad row)
  // The shard's statistics (shard/shard_stats.h), its done file. Timings: decode_cpu is summed
  // over the decode threads (it overlaps inference); decode_wait is the time inference waited for
  // decoding; model the time in the towers; total - model - decode_wait = everything else.
  ShardStats stats;
};

// What the phases read besides the state; the phases change none of it. embed_images may return
// (interrupted) while decode tasks are still queued on `pool`; they read `models`, `options` and
// `reuse`, which must therefore outlive the pool's queue (ClipShardProcessor owns all four).
struct ShardContext {
  const ShardTask& task;
  const std::vector<OperatorSpec>& ops;
  EmbeddingModels& models;
  const ClipProcessorOptions& options;  // decode.target_short_side set by the owner
  ThreadPool& pool;
  ReuseCache& reuse;
  const std::atomic<bool>& stop;
  const ShardProgress& progress;  // may be empty
};

enum class PhaseResult {
  kCompleted,
  kInterrupted,  // `stop` was raised: the state is partial and must not be written
};

// Walks the shard's lines (for_each_shard_line) into state->rows. Per row and operator: the image
// (a tar member under the operator's image key, or the manifest's path resolved against the image
// root) and the caption; a row missing either key, with a blank caption or an unusable path gets
// that RowOp's status and key (the first failure of the operator) and no image/text. Otherwise the
// image joins state->files (one entry per ImageRef::identity, needs[] marking the operator's image
// space) and the caption's token sequence joins state->texts (one entry per text space and ids).
// Fills stats lines, blank/error lines, captions_truncated, images_distinct; broken lines' error
// records go to state->errors. Throws like for_each_shard_line.
void collect_rows(const ShardContext& ctx, ShardState* state);

// Embeds every needed (file, image space): files are decoded on ctx.pool, prefetch_batches waves
// of batch_size files ahead of the wave being inferred; a decode task looks each needed space up in
// the reuse cache first and decodes only when one misses. Per wave and image space, one
// encode_images call with the wave's files (first-appearance order) that decoded and still lack
// that embedding. Fills files' status, key, emb, reused and the image/decode statistics; calls
// ctx.progress after each wave. Returns kInterrupted when stop is raised, checked after each wave.
PhaseResult embed_images(const ShardContext& ctx, ShardState* state);

// Marks the texts of row operators whose image decoded (a failed row's caption is never encoded),
// looks each up in the reuse cache, then per text space encodes the rest in batches of batch_size,
// sorted by token length (ties in first-appearance order), zero-padded to the batch's longest.
// Fills texts' needed, reused, emb and the text statistics. Returns kInterrupted when stop is
// raised, checked after each batch.
PhaseResult embed_texts(const ShardContext& ctx, ShardState* state);

// Per row and operator: the cosine of its image and text embeddings, as the evaluator's score in
// the row's object or the filter's similarity in state->sims (worker/operator_spec.h's scales), and
// its content keys in state->row_keys. A row operator whose image failed takes the image's status;
// a failed row gets the bad-row score/similarity for every failed operator and one error record
// (its first failure). Then sorts state->errors by line (stable) and sets stats rows, error_rows.
void score_rows(const ShardContext& ctx, ShardState* state);

// Writes the shard's parts: with options.cache.write the embedding cache part (every known
// embedding, described) and the row keys part; the rows, sims and error records into `writer`;
// then commits it, which writes the done file last (with `rank`). Sets stats.seconds.total.
// Throws std::runtime_error naming the file that cannot be written.
void write_parts(const ShardContext& ctx, const RunDirectory& dir, int rank,
                 ShardPartWriter* writer, ShardState* state);

// The phases in order, the part writer opened first (an unwritable run directory fails before any
// work). kInterrupted (nothing committed) when an embedding phase was interrupted; else the shard's
// parts are committed and progress reports every line.
ShardOutcome process_shard(const ShardContext& ctx, const RunDirectory& dir, int rank);

}  // namespace clipshard
