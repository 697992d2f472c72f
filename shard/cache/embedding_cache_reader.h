// Looks embeddings up in one or more cache files (docs/FORMATS.md, "Embedding cache"), e.g. the
// run's embeddings.h5 and the `embedding_cache.reuse` files. Files are opened read-only and checked
// at construction; a table's key index (key -> file, position) is loaded on its first use and kept
// (about 35 bytes a key), embeddings are read from disk on each hit.
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

  // Every table of every file, sorted, each once.
  std::vector<CacheTable> tables() const;
  // Distinct keys of the table over all files (loads its index); 0 when absent.
  int64_t size(const CacheTable& table);
  // The table's embedding width; 0 when absent.
  int dim(const CacheTable& table) const;
  // True when any file stores the table as float16 (lookups from it are not bit-exact).
  bool lossy(const CacheTable& table) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipshard
