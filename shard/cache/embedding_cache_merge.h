// Merges embedding cache files (the workers' per-shard parts, or any caches of this format) into
// one file, e.g. the run's embeddings.h5.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace clipshard {

struct EmbeddingCacheMergeOptions {
  int gzip_level = 0;  // 0 = no compression (fastest); 1..9 = shuffle + deflate
};

struct EmbeddingCacheMergeStats {
  int64_t parts = 0;       // input files
  int64_t tables = 0;      // tables in the output
  int64_t entries = 0;     // entries written
  int64_t duplicates = 0;  // entries dropped because an earlier one had the same table and key
};

// Writes `out` holding every table of every part; within a table each key once, the first
// occurrence in `parts` order winning (its row id and embedding), entries in that order. Each
// table keeps its parts' dtype. Streams blocks of entries: memory is bounded by one table's key
// set (~35 bytes a key) plus a few MiB, never by the embeddings. `out` is written as "<out>.tmp"
// and renamed when complete (an existing `out` is replaced; it may itself be one of the parts).
// Throws Hdf5Error (a std::runtime_error) naming the file when a part is missing or invalid, when
// parts disagree on a table's dim or dtype, or when writing fails; `out` is then left as it was.
EmbeddingCacheMergeStats merge_embedding_caches(const std::vector<std::filesystem::path>& parts,
                                                const std::filesystem::path& out,
                                                const EmbeddingCacheMergeOptions& options = {});

}  // namespace clipshard
