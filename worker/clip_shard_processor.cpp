#include "worker/clip_shard_processor.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <mutex>
#include <unordered_map>

#include "models/text/python_text.h"
#include "shard/cache/content_key.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/embedding_cache_writer.h"
#include "shard/part_format.h"
#include "shard/row_keys.h"
#include "shard/row_source.h"
#include "worker/thread_pool.h"

namespace clipshard {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One distinct image (a file, or a member of the shard's tar) of the shard.
struct ImageFile {
  ImageRef ref;
  int64_t first_row = 0;    // global row id of the first row that uses it
  std::vector<char> needs;  // per image space
  RowStatus status;
  std::vector<std::vector<float>> emb;  // per image space: normalised embedding once known
  std::vector<char> reused;             // per image space: came from the reuse cache
  ContentKey key{};
};

// One distinct token sequence of a text space.
struct TextItem {
  int space = 0;
  std::vector<int32_t> ids;
  int64_t first_row = 0;
  ContentKey key{};
  bool needed = false;
  bool reused = false;
  std::vector<float> emb;
};

struct RowOp {
  int image = -1;  // index into the shard's ImageFiles
  int text = -1;   // index into the shard's TextItems
  RowStatus status;
  std::string key;  // the row key a failure is about
};

struct Row {
  int64_t line = 0;
  std::string sample;  // tar rows: the sample's key
  int64_t global_row = 0;
  Json object;
  std::vector<RowOp> ops;
};

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

// The pipeline name carries the model's precision and device type where they are not the
// reference fp32 CPU (ModelBank::cache_numerics_suffix): an fp16 embedding is never reused by an
// fp32 run.
CacheTable image_table(const ModelBank& models, const ImageSpace& space) {
  return {models.model_id(space.model), "image",
          space.pipeline + models.cache_numerics_suffix(space.model)};
}
CacheTable text_table(const ModelBank& models, const TextSpace& space) {
  return {models.model_id(space.model), "text",
          space.pipeline + models.cache_numerics_suffix(space.model)};
}

}  // namespace

struct ClipShardProcessor::Impl {
  std::vector<OperatorSpec> ops;
  std::shared_ptr<ModelBank> models;
  ClipProcessorOptions options;
  ThreadPool pool;
  std::unique_ptr<EmbeddingCacheReader> reuse;
  std::mutex reuse_mutex;  // HDF5 is not thread-safe

  Impl(std::vector<OperatorSpec> o, std::shared_ptr<ModelBank> m, ClipProcessorOptions opt)
      : ops(std::move(o)),
        models(std::move(m)),
        options(std::move(opt)),
        pool(std::max(1, options.decode_threads)) {
    std::vector<std::filesystem::path> existing;
    for (const auto& p : options.cache.reuse)
      if (std::filesystem::exists(p)) existing.push_back(p);
    if (!existing.empty()) reuse = std::make_unique<EmbeddingCacheReader>(existing);
    int target = 0;
    for (const auto& s : models->image_spaces()) target = std::max(target, s.spec.size);
    options.decode.target_short_side = target;
  }

  bool lookup(const CacheTable& table, const ContentKey& key, std::vector<float>* out) {
    if (!reuse) return false;
    std::lock_guard<std::mutex> lock(reuse_mutex);
    return reuse->lookup(table, key, out);
  }

  Decoded decode(const ImageRef& ref, const std::vector<char>& needs) {
    const auto start = Clock::now();
    const auto& spaces = models->image_spaces();
    Decoded d;
    d.pixels.resize(spaces.size());
    d.cached.resize(spaces.size());
    std::vector<uint8_t> bytes;
    d.status = read_image_bytes(ref, options.source, &bytes);
    if (!d.status.ok()) return d;
    d.key = content_key(bytes.data(), bytes.size());
    bool all_cached = true;
    for (size_t s = 0; s < spaces.size(); ++s) {
      if (needs[s] && !lookup(image_table(*models, spaces[s]), d.key, &d.cached[s]))
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
};

ClipShardProcessor::ClipShardProcessor(std::vector<OperatorSpec> ops,
                                       std::shared_ptr<ModelBank> models,
                                       ClipProcessorOptions options)
    : impl_(std::make_unique<Impl>(std::move(ops), std::move(models), std::move(options))) {}

ClipShardProcessor::~ClipShardProcessor() = default;

std::vector<OperatorModelInfo> ClipShardProcessor::models() const {
  return impl_->models->operator_models();
}

ShardOutcome ClipShardProcessor::process(const ShardTask& task, const RunDirectory& dir, int rank,
                                         const std::atomic<bool>& stop,
                                         const ShardProgress& progress) {
  const Shard& shard = task.shard;
  Impl& m = *impl_;
  ModelBank& models = *m.models;
  const auto& image_spaces = models.image_spaces();
  const auto& text_spaces = models.text_spaces();
  const int batch_size = std::max(1, m.options.batch_size);
  const bool pinned = models.uses_cuda();
  const auto start = Clock::now();
  // The shard's statistics (shard/shard_stats.h), its done file. Timings: decode_cpu is summed
  // over the decode threads (it overlaps inference); decode_wait is the time inference waited for
  // decoding; model the time in the towers; total - model - decode_wait = everything else.
  ShardStats stats;
  stats.lines = shard.line_count;

  const std::string& manifest = task.manifest;
  const std::filesystem::path manifest_dir = std::filesystem::path(manifest).parent_path();
  const int64_t global_base = task.global_base;

  ShardPartWriter writer(dir, shard.id);
  std::vector<ErrorRecord> error_records;  // written in line order at the end

  // 1. Lines -> rows -> per operator: image file and token sequence (deduplicated).
  std::vector<Row> rows;
  std::vector<ImageFile> files;
  std::unordered_map<std::string, int> file_index;
  std::vector<TextItem> texts;
  std::unordered_map<ContentKey, int, ContentKeyHash> text_index;  // key mixes in the space
  {
    RowSource reader(task.kind, manifest, task.url, shard.byte_begin, shard.first_line);
    SourceRow line;
    for (int64_t i = 0; i < shard.line_count; ++i) {
      if (!reader.next(&line))
        throw std::runtime_error("input " + manifest +
                                 " is shorter than planned (changed "
                                 "during the run?)");
      ParsedLine& parsed = line.parsed;
      if (parsed.kind == LineKind::kBlank) {
        ++stats.blank_lines;
        continue;
      }
      if (parsed.kind == LineKind::kBroken) {
        error_records.push_back(
            {manifest, line.line, parsed.status, "", "", line.from_tar, line.sample});
        stats.count_error(std::string(row_error_name(parsed.status.code)));
        ++stats.error_lines;
        continue;
      }
      Row row;
      row.line = line.line;
      row.sample = line.sample;
      row.global_row = global_base + line.line - 1;
      row.object = std::move(parsed.object);
      row.ops.resize(m.ops.size());
      for (size_t o = 0; o < m.ops.size(); ++o) {
        const OperatorSpec& op = m.ops[o];
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
          ro.status = resolve_image_path(image_value, manifest_dir, m.options.source, &image.path);
        }
        if (!ro.status.ok()) continue;
        ro.key.clear();
        const int is = models.image_space_of(o);
        auto [it, inserted] = file_index.emplace(image.identity(), static_cast<int>(files.size()));
        if (inserted) {
          ImageFile f;
          f.ref = image;
          f.first_row = row.global_row;
          f.needs.assign(image_spaces.size(), 0);
          f.emb.resize(image_spaces.size());
          f.reused.assign(image_spaces.size(), 0);
          files.push_back(std::move(f));
        }
        files[it->second].needs[is] = 1;
        ro.image = it->second;
        const int ts = models.text_space_of(o);
        TokenizedText tokens = models.tokenize(ts, caption);
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
      rows.push_back(std::move(row));
    }
  }

  // 2. Images: decode on the pool a few batches ahead, infer batch by batch.
  const int waves = static_cast<int>((files.size() + batch_size - 1) / batch_size);
  std::vector<std::future<Decoded>> pending(files.size());
  int submitted = 0;
  auto submit_wave = [&](int w) {
    const size_t end = std::min(files.size(), static_cast<size_t>(w + 1) * batch_size);
    for (size_t f = static_cast<size_t>(w) * batch_size; f < end; ++f) {
      pending[f] = m.pool.submit([impl = &m, ref = files[f].ref, needs = files[f].needs] {
        return impl->decode(ref, needs);
      });
    }
  };
  for (int w = 0; w < waves; ++w) {
    while (submitted < waves && submitted <= w + m.options.prefetch_batches)
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
      // Page-locked on a CUDA worker, so that the model's non_blocking copy to the GPU is a DMA
      // transfer (never requested on a CPU worker: it needs a CUDA runtime).
      at::Tensor input = torch::empty({static_cast<int64_t>(batch.size()), 3, n, n},
                                      torch::TensorOptions().pinned_memory(pinned));
      for (size_t b = 0; b < batch.size(); ++b) {
        const auto& px = decoded[batch[b] - begin].pixels[s];
        std::memcpy(input[b].data_ptr<float>(), px.data(), px.size() * sizeof(float));
      }
      const auto t = Clock::now();
      at::Tensor emb = models.encode_images(static_cast<int>(s), input).contiguous();
      stats.seconds.model += seconds_since(t);
      const int64_t dim = emb.size(1);
      for (size_t b = 0; b < batch.size(); ++b) {
        const float* p = emb[b].data_ptr<float>();
        files[batch[b]].emb[s].assign(p, p + dim);
      }
      stats.embeddings.image_computed += static_cast<int64_t>(batch.size());
    }
    if (stop.load()) return ShardOutcome::kInterrupted;
    if (progress) progress(shard.line_count * (w + 1) / (waves + 1));
  }

  // 3. Texts: only those of rows whose image decoded (a failed row is never inferred).
  for (const Row& row : rows)
    for (const RowOp& ro : row.ops)
      if (ro.image >= 0 && files[ro.image].status.ok()) texts[ro.text].needed = true;
  for (size_t ts = 0; ts < text_spaces.size(); ++ts) {
    const CacheTable table = text_table(models, text_spaces[ts]);
    std::vector<size_t> todo;
    for (size_t t = 0; t < texts.size(); ++t) {
      if (texts[t].space != static_cast<int>(ts) || !texts[t].needed) continue;
      if (m.lookup(table, texts[t].key, &texts[t].emb)) {
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
      at::Tensor emb = models.encode_texts(static_cast<int>(ts), ids).contiguous();
      stats.seconds.model += seconds_since(t);
      const int64_t dim = emb.size(1);
      for (size_t b = b0; b < b1; ++b) {
        const float* p = emb[b - b0].data_ptr<float>();
        texts[todo[b]].emb.assign(p, p + dim);
      }
      stats.embeddings.text_computed += static_cast<int64_t>(b1 - b0);
      if (stop.load()) return ShardOutcome::kInterrupted;
    }
  }

  // 4. Scores, output rows and error records; with the cache part, each row's content keys (the
  // link from rows to the content-keyed cache entries that `clipshard export` follows).
  std::unique_ptr<RowKeysWriter> row_keys;
  std::vector<RowKeys> keys_of_row(m.ops.size());
  if (m.options.cache.write) {
    std::vector<RowKeyTables> tables;
    for (size_t o = 0; o < m.ops.size(); ++o) {
      const CacheTable image = image_table(models, image_spaces[models.image_space_of(o)]);
      const CacheTable text = text_table(models, text_spaces[models.text_space_of(o)]);
      tables.push_back({image.model_id, image.pipeline, text.model_id, text.pipeline});
    }
    row_keys = std::make_unique<RowKeysWriter>(row_keys_path(dir.root(), shard.id), tables);
  }
  std::vector<float> sims;
  for (Row& row : rows) {
    sims.clear();
    bool row_failed = false;
    for (size_t o = 0; o < m.ops.size(); ++o) {
      const OperatorSpec& op = m.ops[o];
      RowOp& ro = row.ops[o];
      if (ro.status.ok() && ro.image >= 0 && !files[ro.image].status.ok()) {
        ro.status = files[ro.image].status;
        ro.key = op.image_key;
      }
      float cosine = 0.0f;
      keys_of_row[o] = RowKeys{};
      if (ro.status.ok()) {
        const auto& a = files[ro.image].emb[models.image_space_of(o)];
        const auto& b = texts[ro.text].emb;
        keys_of_row[o] = {files[ro.image].key.hi, files[ro.image].key.lo, texts[ro.text].key.hi,
                          texts[ro.text].key.lo};
        double dot = 0.0;
        for (size_t k = 0; k < a.size() && k < b.size(); ++k) dot += double(a[k]) * double(b[k]);
        cosine = static_cast<float>(dot);
      } else if (!row_failed) {
        row_failed = true;
        error_records.push_back({manifest, row.line, ro.status, operator_name(op.kind), ro.key,
                                 task.kind == InputKind::kTar, row.sample});
        stats.count_error(std::string(row_error_name(ro.status.code)));
      }
      // Score scales and the bad-row marks: worker/operator_spec.h.
      if (op.is_filter()) {
        sims.push_back(ro.status.ok() ? filter_similarity(cosine) : kBadRowSimilarity);
      } else {
        row.object[op.output_key] = ro.status.ok() ? evaluator_score(cosine) : kBadRowScore;
      }
    }
    if (row_failed) ++stats.error_rows;
    writer.add_row(dump_row(row.object), sims);
    if (row_keys) row_keys->add_row(keys_of_row);
  }
  stats.rows = static_cast<int64_t>(rows.size());
  std::stable_sort(error_records.begin(), error_records.end(),
                   [](const ErrorRecord& a, const ErrorRecord& b) { return a.line < b.line; });
  for (const ErrorRecord& e : error_records) writer.add_error(e);

  // 5. Embedding cache part, then the shard's parts (done file last).
  if (m.options.cache.write) {
    EmbeddingCacheWriterOptions wopts;
    wopts.lossy_fp16 = m.options.cache.lossy_fp16;
    EmbeddingCacheWriter cache(dir.shard_parts(shard.id).embeddings, wopts);
    for (const ImageSpace& s : image_spaces)
      cache.describe(image_table(models, s), models.table_description(s.model));
    for (const TextSpace& s : text_spaces)
      cache.describe(text_table(models, s), models.table_description(s.model));
    for (const ImageFile& f : files)
      for (size_t s = 0; s < image_spaces.size(); ++s)
        if (!f.emb[s].empty())
          cache.add(image_table(models, image_spaces[s]), f.key, f.first_row, f.emb[s].data(),
                    static_cast<int>(f.emb[s].size()));
    for (const TextItem& t : texts)
      if (!t.emb.empty())
        cache.add(text_table(models, text_spaces[t.space]), t.key, t.first_row, t.emb.data(),
                  static_cast<int>(t.emb.size()));
    cache.commit();
    row_keys->commit();
  }
  stats.images_distinct = static_cast<int64_t>(files.size());
  stats.seconds.total = seconds_since(start);
  writer.commit(stats, rank);
  if (progress) progress(shard.line_count);
  return ShardOutcome::kFinished;
}

}  // namespace clipshard
