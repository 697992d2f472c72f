// Looks embeddings up in one or more cache files (docs/FORMATS.md, "Embedding cache"), e.g. the
// run's embeddings.h5 and the `embedding_cache.reuse` files. Files are opened read-only and checked
// at construction. Tables are sorted by key on disk: a lookup binary-searches the table's fence
// (every 1024th key, loaded on first use: 16 bytes per 1024 keys) and then one block of 1024 keys
// (read from disk, a few MiB of recent blocks kept), and reads the embedding of a hit. Memory
// stays flat as the cache grows: about 0.016 bytes a key plus 4 MiB.
//
// One thread at a time per reader (lookups from several threads need the caller's mutex); HDF5
// calls of all readers/writers are serialised internally.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "shard/cache/cache_table.h"
#include "shard/cache/content_key.h"

namespace clipshard {

class EmbeddingCacheReader {
 public:
  // Opens every file and lists its tables. Where a key is in several files, the first file in
  // `paths` wins. Throws Hdf5Error (a std::runtime_error) naming the file when one is missing, not
  // an HDF5 file, truncated, not a clipshard cache of this version, or when two files hold the same
  // table with different dims.
  explicit EmbeddingCacheReader(const std::filesystem::path& path);
  explicit EmbeddingCacheReader(const std::vector<std::filesystem::path>& paths);
  ~EmbeddingCacheReader();
  EmbeddingCacheReader(const EmbeddingCacheReader&) = delete;
  EmbeddingCacheReader& operator=(const EmbeddingCacheReader&) = delete;

  // If `key` is in `table`, writes its embedding (dim(table) floats; float16 entries converted
  // back to float) to `out` and returns true; false when the table or the key is absent. Throws
  // std::invalid_argument when `dim` is not the table's dim, Hdf5Error when reading fails
  // (corrupt file).
  bool lookup(const CacheTable& table, const ContentKey& key, float* out, int dim);
  // The same, resizing `out` to the table's dim on a hit (left untouched on a miss).
  bool lookup(const CacheTable& table, const ContentKey& key, std::vector<float>* out);
  bool contains(const CacheTable& table, const ContentKey& key);
  // Looks up n keys at once, in key order (a shard's keys then walk each table once, each block
  // of keys read once): for each hit writes the embedding to out + i*dim and sets found[i].
  // Returns the number of hits. Throws like lookup().
  int64_t lookup_batch(const CacheTable& table, const ContentKey* keys, size_t n, float* out,
                       int dim, bool* found);

  // Every table of every file, sorted, each once.
  std::vector<CacheTable> tables() const;
  // Distinct keys of the table over all files (one file: its row count; several: a walk over
  // their keys, kept); 0 when absent.
  int64_t size(const CacheTable& table);
  // The table's embedding width; 0 when absent.
  int dim(const CacheTable& table) const;
  // True when any file stores the table as float16 (lookups from it are not bit-exact).
  bool lossy(const CacheTable& table) const;
  // What the table's embeddings were computed with, from the first file holding it; empty when
  // absent.
  TableDescription description(const CacheTable& table) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipshard
