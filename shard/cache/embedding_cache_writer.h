// Writes one embedding cache file (docs/FORMATS.md, "Embedding cache"): a worker's per-shard part,
// later merged into the run's embeddings.h5 (embedding_cache_merge.h). The file appears at its
// path complete or not at all: it is written as "<path>.tmp" and renamed by commit(). The format
// stores each table sorted by key, so the writer holds its entries in memory until commit() (about
// 40 bytes a key plus the embeddings): it is meant for one shard's part, not for a whole cache
// (build those with merge_embedding_caches).
//
// One thread at a time per writer; HDF5 calls of all writers/readers are serialised internally.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "shard/cache/cache_table.h"
#include "shard/cache/content_key.h"

namespace clipshard {

struct EmbeddingCacheWriterOptions {
  // Store float16 instead of float32: half the size, but a reused embedding then gives slightly
  // different scores, so it must be asked for. float32 reuse is bit-exact.
  bool lossy_fp16 = false;
  // 0 = no compression (fastest; embeddings compress poorly anyway); 1..9 = shuffle + deflate.
  int gzip_level = 0;
};
// The name worker/ used before this header existed; prefer EmbeddingCacheWriterOptions.
using EmbeddingCacheOptions_Writer = EmbeddingCacheWriterOptions;

class EmbeddingCacheWriter {
 public:
  // Creates "<path>.tmp" (replacing a leftover from a crash). Throws Hdf5Error (a
  // std::runtime_error) naming the file when it cannot be created (missing or unwritable
  // directory), std::invalid_argument for a gzip_level outside 0..9.
  explicit EmbeddingCacheWriter(const std::filesystem::path& path,
                                EmbeddingCacheWriterOptions options = {});
  // Without a successful commit(): closes and deletes "<path>.tmp"; `path` is left as it was.
  ~EmbeddingCacheWriter();
  EmbeddingCacheWriter(const EmbeddingCacheWriter&) = delete;
  EmbeddingCacheWriter& operator=(const EmbeddingCacheWriter&) = delete;

  // Adds the embedding (`dim` floats) of `key` to `table`; `row` is the global row id of the row
  // that produced it. A key already in the table is not stored again (the first one wins) and
  // false is returned. Buffers until commit(). Throws std::invalid_argument for an invalid
  // table (cache_table.h), dim <= 0 or a dim different from the table's first add, std::logic_error
  // after commit().
  bool add(const CacheTable& table, const ContentKey& key, uint64_t row, const float* embedding,
           int dim);

  // Records what `table`'s embeddings were computed with (attributes of its group). May be called
  // before or after its first add(); the last call wins. A table that gets no entry is not
  // written. Throws std::invalid_argument for an invalid table, std::logic_error after commit().
  void describe(const CacheTable& table, const TableDescription& description);

  // Sorts each table by key and writes it, closes the file, fsyncs it and renames it to `path`
  // (replacing an existing file), then fsyncs the directory. Throws Hdf5Error / std::runtime_error
  // naming the file on failure, and the temporary file is removed. Nothing may be added afterwards.
  void commit();

  // Entries added so far over all tables (duplicates not counted).
  int64_t size() const;
  const std::filesystem::path& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipshard
