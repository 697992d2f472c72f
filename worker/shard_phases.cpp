#include "worker/shard_phases.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <unordered_map>

#include "models/image/image_decoder.h"
#include "models/text/python_text.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/embedding_cache_writer.h"
#include "worker/shard_lines.h"

namespace clipshard {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int batch_size_of(const ShardContext& ctx) { return std::max(1, ctx.options.batch_size); }

// The sims columns of a row: one per filter operator.
size_t filter_count(const std::vector<OperatorSpec>& ops) {
  return static_cast<size_t>(
      std::count_if(ops.begin(), ops.end(), [](const OperatorSpec& op) { return op.is_filter(); }));
}

// What a decode task hands back.
struct Decoded {
  RowStatus status;
  ContentKey key{};
  std::vector<std::vector<float>> pixels;  // per image space: CHW, empty when not needed/cached
  std::vector<std::vector<float>> cached;  // per image space: embedding from the reuse cache
  bool decoded = false;                    // the file was decoded (ShardStats::images_decoded)
  int preprocessed = 0;                    // image spaces it was preprocessed for
  double seconds = 0.0;
};

// Runs on a decode thread: reads the image, looks its needed spaces up in the reuse cache (under
// `tables`, one per image space; null when there is no reuse cache) and decodes + preprocesses it
// only for those that missed. Reads only what outlives the pool's queue.
Decoded decode_image(const EmbeddingModels& models, ReuseCache& reuse,
                     const std::vector<CacheTable>* tables, const ClipProcessorOptions& options,
                     const ImageRef& ref, const std::vector<char>& needs) {
  const auto start = Clock::now();
  const auto& spaces = models.image_spaces();
  Decoded d;
  d.pixels.resize(spaces.size());
  d.cached.resize(spaces.size());
  std::vector<uint8_t> bytes;
  d.status = read_image_bytes(ref, options.source, &bytes);
  if (!d.status.ok()) return d;
  d.key = content_key(bytes.data(), bytes.size());
  bool all_cached = true;
  for (size_t s = 0; s < spaces.size(); ++s) {
    if (needs[s] && !(tables && reuse.lookup((*tables)[s], d.key, &d.cached[s])))
      all_cached = false;
  }
  if (!all_cached) {
    RgbImage image;
    d.status = decode_image_bytes(bytes.data(), bytes.size(), options.decode, &image);
    d.decoded = true;
    if (d.status.ok()) {
      for (size_t s = 0; s < spaces.size(); ++s) {
        if (!needs[s] || !d.cached[s].empty()) continue;
        const RgbImage crop = resize_and_center_crop(image, spaces[s].spec);
        d.pixels[s].resize(size_t{3} * spaces[s].spec.size * spaces[s].spec.size);
        normalize_to_chw(crop, spaces[s].spec, d.pixels[s].data());
        ++d.preprocessed;
      }
    }
  }
  d.seconds = seconds_since(start);
  return d;
}

}  // namespace

ReuseCache::ReuseCache(const std::vector<std::filesystem::path>& files) {
  std::vector<std::filesystem::path> existing;
  for (const auto& p : files)
    if (std::filesystem::exists(p)) existing.push_back(p);
  if (!existing.empty()) reader_ = std::make_unique<EmbeddingCacheReader>(existing);
}

ReuseCache::~ReuseCache() = default;

bool ReuseCache::lookup(const CacheTable& table, const ContentKey& key, std::vector<float>* out) {
  if (!reader_) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return reader_->lookup(table, key, out);
}

void collect_rows(const ShardContext& ctx, ShardState* state) {
  const std::string& manifest = ctx.task.manifest;
  const std::filesystem::path manifest_dir = std::filesystem::path(manifest).parent_path();
  const size_t image_spaces = ctx.models.image_spaces().size();
  std::vector<ImageFile>& files = state->files;
  std::vector<TextItem>& texts = state->texts;
  ShardStats& stats = state->stats;
  std::unordered_map<std::string, int> file_index;
  std::unordered_map<ContentKey, int, ContentKeyHash> text_index;  // key mixes in the space
  stats.lines = ctx.task.shard.line_count;

  for_each_shard_line(ctx.task, &stats, &state->errors, [&](SourceRow& line) {
    Row row;
    row.line = line.line;
    row.sample = line.sample;
    row.global_row = ctx.task.global_base + line.line - 1;
    row.object = std::move(line.parsed.object);
    row.ops.resize(ctx.ops.size());
    for (size_t o = 0; o < ctx.ops.size(); ++o) {
      const OperatorSpec& op = ctx.ops[o];
      RowOp& ro = row.ops[o];
      std::string caption;
      ImageRef image;
      ro.status = line.from_tar
                      ? find_tar_image(row.object, op.image_key, manifest, line.skipped, &image)
                      : RowStatus::Ok();
      ro.key = op.image_key;
      std::string image_value;
      if (ro.status.ok() && !line.from_tar)
        ro.status = get_string_field(row.object, pick_key_alternative(row.object, op.image_key),
                                     &image_value);
      if (ro.status.ok()) {
        ro.status = get_string_field(row.object, op.text_key, &caption);
        ro.key = op.text_key;
      }
      if (ro.status.ok() && python_is_blank(caption)) {
        ro.status = RowStatus::Error(RowError::kEmptyCaption, "empty or whitespace-only caption");
      }
      if (ro.status.ok() && !line.from_tar) {
        ro.key = op.image_key;
        ro.status = resolve_image_path(image_value, manifest_dir, ctx.options.source, &image.path);
      }
      if (!ro.status.ok()) continue;
      ro.key.clear();
      const int is = ctx.models.image_space_of(o);
      auto [it, inserted] = file_index.emplace(image.identity(), static_cast<int>(files.size()));
      if (inserted) {
        ImageFile f;
        f.ref = image;
        f.first_row = row.global_row;
        f.needs.assign(image_spaces, 0);
        f.emb.resize(image_spaces);
        f.reused.assign(image_spaces, 0);
        files.push_back(std::move(f));
      }
      files[it->second].needs[is] = 1;
      ro.image = it->second;
      const int ts = ctx.models.text_space_of(o);
      TokenizedText tokens = ctx.models.tokenize(ts, caption);
      if (tokens.truncated) ++stats.captions_truncated;
      ContentKey key = content_key(tokens.ids.data(), tokens.ids.size() * sizeof(int32_t));
      ContentKey slot = key;
      slot.hi ^= static_cast<uint64_t>(ts + 1) * 0x9E3779B97F4A7C15ull;
      auto [tt, text_inserted] = text_index.emplace(slot, static_cast<int>(texts.size()));
      if (text_inserted) {
        TextItem t;
        t.space = ts;
        t.ids = std::move(tokens.ids);
        t.first_row = row.global_row;
        t.key = key;
        texts.push_back(std::move(t));
      }
      ro.text = tt->second;
    }
    state->rows.push_back(std::move(row));
  });
  stats.images_distinct = static_cast<int64_t>(files.size());
}

PhaseResult embed_images(const ShardContext& ctx, ShardState* state) {
  const auto& image_spaces = ctx.models.image_spaces();
  const int batch_size = batch_size_of(ctx);
  // Page-locked on a CUDA worker, so that the model's non_blocking copy to the GPU is a DMA
  // transfer (never requested on a CPU worker: it needs a CUDA runtime).
  const bool pinned = ctx.models.uses_cuda();
  const int64_t line_count = ctx.task.shard.line_count;
  std::vector<ImageFile>& files = state->files;
  ShardStats& stats = state->stats;

  // The reuse cache's table per image space, shared by the shard's decode tasks (which may outlive
  // this call when it is interrupted).
  std::shared_ptr<const std::vector<CacheTable>> tables;
  if (!ctx.reuse.empty()) {
    std::vector<CacheTable> t;
    for (size_t s = 0; s < image_spaces.size(); ++s)
      t.push_back(image_cache_table(ctx.models, static_cast<int>(s)));
    tables = std::make_shared<const std::vector<CacheTable>>(std::move(t));
  }
  const int waves = static_cast<int>((files.size() + batch_size - 1) / batch_size);
  std::vector<std::future<Decoded>> pending(files.size());
  int submitted = 0;
  auto submit_wave = [&](int w) {
    const size_t end = std::min(files.size(), static_cast<size_t>(w + 1) * batch_size);
    for (size_t f = static_cast<size_t>(w) * batch_size; f < end; ++f) {
      // Captures copies and what outlives the queue (ShardContext): an interrupted shard returns
      // with tasks still queued.
      pending[f] =
          ctx.pool.submit([models = &ctx.models, reuse = &ctx.reuse, tables, options = &ctx.options,
                           ref = files[f].ref, needs = files[f].needs] {
            return decode_image(*models, *reuse, tables.get(), *options, ref, needs);
          });
    }
  };
  for (int w = 0; w < waves; ++w) {
    while (submitted < waves && submitted <= w + ctx.options.prefetch_batches)
      submit_wave(submitted++);
    const size_t begin = static_cast<size_t>(w) * batch_size;
    const size_t end = std::min(files.size(), begin + batch_size);
    std::vector<Decoded> decoded;
    for (size_t f = begin; f < end; ++f) {
      const auto wait_start = Clock::now();
      decoded.push_back(pending[f].get());
      stats.seconds.decode_wait += seconds_since(wait_start);
      Decoded& d = decoded.back();
      stats.seconds.decode_cpu += d.seconds;
      stats.images_decoded += d.decoded ? 1 : 0;
      stats.images_preprocessed += d.preprocessed;
      files[f].status = d.status;
      files[f].key = d.key;
      for (size_t s = 0; s < image_spaces.size(); ++s) {
        if (!d.cached[s].empty()) {
          files[f].emb[s] = std::move(d.cached[s]);
          files[f].reused[s] = 1;
          ++stats.embeddings.image_reused;
        }
      }
    }
    for (size_t s = 0; s < image_spaces.size(); ++s) {
      std::vector<size_t> batch;
      for (size_t f = begin; f < end; ++f)
        if (files[f].status.ok() && files[f].needs[s] && files[f].emb[s].empty())
          batch.push_back(f);
      if (batch.empty()) continue;
      const int n = image_spaces[s].spec.size;
      at::Tensor input = torch::empty({static_cast<int64_t>(batch.size()), 3, n, n},
                                      torch::TensorOptions().pinned_memory(pinned));
      for (size_t b = 0; b < batch.size(); ++b) {
        const auto& px = decoded[batch[b] - begin].pixels[s];
        std::memcpy(input[b].data_ptr<float>(), px.data(), px.size() * sizeof(float));
      }
      const auto t = Clock::now();
      at::Tensor emb = ctx.models.encode_images(static_cast<int>(s), input).contiguous();
      stats.seconds.model += seconds_since(t);
      const int64_t dim = emb.size(1);
      for (size_t b = 0; b < batch.size(); ++b) {
        const float* p = emb[b].data_ptr<float>();
        files[batch[b]].emb[s].assign(p, p + dim);
      }
      stats.embeddings.image_computed += static_cast<int64_t>(batch.size());
    }
    if (ctx.stop.load()) return PhaseResult::kInterrupted;
    if (ctx.progress) ctx.progress(line_count * (w + 1) / (waves + 1));
  }
  return PhaseResult::kCompleted;
}

PhaseResult embed_texts(const ShardContext& ctx, ShardState* state) {
  const auto& text_spaces = ctx.models.text_spaces();
  const int batch_size = batch_size_of(ctx);
  std::vector<TextItem>& texts = state->texts;
  ShardStats& stats = state->stats;

  for (const Row& row : state->rows)
    for (const RowOp& ro : row.ops)
      if (ro.image >= 0 && state->files[ro.image].status.ok()) texts[ro.text].needed = true;
  for (size_t ts = 0; ts < text_spaces.size(); ++ts) {
    const CacheTable table = text_cache_table(ctx.models, static_cast<int>(ts));
    std::vector<size_t> todo;
    for (size_t t = 0; t < texts.size(); ++t) {
      if (texts[t].space != static_cast<int>(ts) || !texts[t].needed) continue;
      if (ctx.reuse.lookup(table, texts[t].key, &texts[t].emb)) {
        texts[t].reused = true;
        ++stats.embeddings.text_reused;
      } else {
        todo.push_back(t);
      }
    }
    // Batches of similar lengths: a batch is padded to its longest caption, so sorting by length
    // (ties in first-appearance order) removes most of the padding the text tower would compute.
    std::stable_sort(todo.begin(), todo.end(),
                     [&](size_t a, size_t b) { return texts[a].ids.size() < texts[b].ids.size(); });
    for (size_t b0 = 0; b0 < todo.size(); b0 += batch_size) {
      const size_t b1 = std::min(todo.size(), b0 + batch_size);
      size_t longest = 1;
      for (size_t b = b0; b < b1; ++b) longest = std::max(longest, texts[todo[b]].ids.size());
      at::Tensor ids = torch::zeros({static_cast<int64_t>(b1 - b0), static_cast<int64_t>(longest)},
                                    torch::kLong);
      auto acc = ids.accessor<int64_t, 2>();
      for (size_t b = b0; b < b1; ++b) {
        const auto& v = texts[todo[b]].ids;
        for (size_t k = 0; k < v.size(); ++k) acc[b - b0][k] = v[k];
      }
      const auto t = Clock::now();
      at::Tensor emb = ctx.models.encode_texts(static_cast<int>(ts), ids).contiguous();
      stats.seconds.model += seconds_since(t);
      const int64_t dim = emb.size(1);
      for (size_t b = b0; b < b1; ++b) {
        const float* p = emb[b - b0].data_ptr<float>();
        texts[todo[b]].emb.assign(p, p + dim);
      }
      stats.embeddings.text_computed += static_cast<int64_t>(b1 - b0);
      if (ctx.stop.load()) return PhaseResult::kInterrupted;
    }
  }
  return PhaseResult::kCompleted;
}

void score_rows(const ShardContext& ctx, ShardState* state) {
  const std::vector<ImageFile>& files = state->files;
  const std::vector<TextItem>& texts = state->texts;
  ShardStats& stats = state->stats;
  const size_t filters = filter_count(ctx.ops);
  state->sims.clear();
  state->sims.reserve(state->rows.size() * filters);
  state->row_keys.assign(state->rows.size() * ctx.ops.size(), RowKeys{});
  for (size_t r = 0; r < state->rows.size(); ++r) {
    Row& row = state->rows[r];
    bool row_failed = false;
    for (size_t o = 0; o < ctx.ops.size(); ++o) {
      const OperatorSpec& op = ctx.ops[o];
      RowOp& ro = row.ops[o];
      if (ro.status.ok() && ro.image >= 0 && !files[ro.image].status.ok()) {
        ro.status = files[ro.image].status;
        ro.key = op.image_key;
      }
      float cosine = 0.0f;
      if (ro.status.ok()) {
        const ImageFile& file = files[ro.image];
        const TextItem& text = texts[ro.text];
        const auto& a = file.emb[ctx.models.image_space_of(o)];
        const auto& b = text.emb;
        state->row_keys[r * ctx.ops.size() + o] = {file.key.hi, file.key.lo, text.key.hi,
                                                   text.key.lo};
        double dot = 0.0;
        for (size_t k = 0; k < a.size() && k < b.size(); ++k) dot += double(a[k]) * double(b[k]);
        cosine = static_cast<float>(dot);
      } else if (!row_failed) {
        row_failed = true;
        state->errors.push_back({ctx.task.manifest, row.line, ro.status, operator_name(op.kind),
                                 ro.key, ctx.task.kind == InputKind::kTar, row.sample});
        stats.count_error(std::string(row_error_name(ro.status.code)));
      }
      // Score scales and the bad-row marks: worker/operator_spec.h.
      if (op.is_filter()) {
        state->sims.push_back(ro.status.ok() ? filter_similarity(cosine) : kBadRowSimilarity);
      } else {
        row.object[op.output_key] = ro.status.ok() ? evaluator_score(cosine) : kBadRowScore;
      }
    }
    if (row_failed) ++stats.error_rows;
  }
  stats.rows = static_cast<int64_t>(state->rows.size());
  std::stable_sort(state->errors.begin(), state->errors.end(),
                   [](const ErrorRecord& a, const ErrorRecord& b) { return a.line < b.line; });
}

void write_parts(const ShardContext& ctx, const RunDirectory& dir, int rank,
                 ShardPartWriter* writer, ShardState* state) {
  EmbeddingModels& models = ctx.models;
  const int64_t shard_id = ctx.task.shard.id;
  const size_t ops = ctx.ops.size();
  const size_t filters = filter_count(ctx.ops);

  // Each row's content keys: the link from rows to the content-keyed cache entries that
  // `clipshard export` follows.
  std::unique_ptr<RowKeysWriter> row_keys;
  if (ctx.options.cache.write) {
    std::vector<RowKeyTables> tables;
    for (size_t o = 0; o < ops; ++o) {
      const CacheTable image = image_cache_table(models, models.image_space_of(o));
      const CacheTable text = text_cache_table(models, models.text_space_of(o));
      tables.push_back({image.model_id, image.pipeline, text.model_id, text.pipeline});
    }
    row_keys = std::make_unique<RowKeysWriter>(row_keys_path(dir.root(), shard_id), tables);
  }
  std::vector<float> sims(filters);
  std::vector<RowKeys> keys(ops);
  for (size_t r = 0; r < state->rows.size(); ++r) {
    std::copy_n(state->sims.begin() + r * filters, filters, sims.begin());
    writer->add_row(dump_row(state->rows[r].object), sims);
    if (row_keys) {
      std::copy_n(state->row_keys.begin() + r * ops, ops, keys.begin());
      row_keys->add_row(keys);
    }
  }
  for (const ErrorRecord& e : state->errors) writer->add_error(e);

  if (ctx.options.cache.write) {
    const auto& image_spaces = models.image_spaces();
    const auto& text_spaces = models.text_spaces();
    std::vector<CacheTable> image_tables, text_tables;
    for (size_t s = 0; s < image_spaces.size(); ++s)
      image_tables.push_back(image_cache_table(models, static_cast<int>(s)));
    for (size_t s = 0; s < text_spaces.size(); ++s)
      text_tables.push_back(text_cache_table(models, static_cast<int>(s)));
    EmbeddingCacheWriterOptions wopts;
    wopts.lossy_fp16 = ctx.options.cache.lossy_fp16;
    EmbeddingCacheWriter cache(dir.shard_parts(shard_id).embeddings, wopts);
    for (size_t s = 0; s < image_spaces.size(); ++s)
      cache.describe(image_tables[s], models.table_description(image_spaces[s].model));
    for (size_t s = 0; s < text_spaces.size(); ++s)
      cache.describe(text_tables[s], models.table_description(text_spaces[s].model));
    for (const ImageFile& f : state->files)
      for (size_t s = 0; s < image_spaces.size(); ++s)
        if (!f.emb[s].empty())
          cache.add(image_tables[s], f.key, f.first_row, f.emb[s].data(),
                    static_cast<int>(f.emb[s].size()));
    for (const TextItem& t : state->texts)
      if (!t.emb.empty())
        cache.add(text_tables[t.space], t.key, t.first_row, t.emb.data(),
                  static_cast<int>(t.emb.size()));
    cache.commit();
    row_keys->commit();
  }
  state->stats.seconds.total = seconds_since(state->started);
  writer->commit(state->stats, rank);
}

ShardOutcome process_shard(const ShardContext& ctx, const RunDirectory& dir, int rank) {
  ShardState state;
  ShardPartWriter writer(dir, ctx.task.shard.id);
  collect_rows(ctx, &state);
  if (embed_images(ctx, &state) == PhaseResult::kInterrupted) return ShardOutcome::kInterrupted;
  if (embed_texts(ctx, &state) == PhaseResult::kInterrupted) return ShardOutcome::kInterrupted;
  score_rows(ctx, &state);
  write_parts(ctx, dir, rank, &writer, &state);
  if (ctx.progress) ctx.progress(ctx.task.shard.line_count);
  return ShardOutcome::kFinished;
}

}  // namespace clipshard
