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
// occurrence in `parts` order winning (its row id and embedding), entries sorted by key (the
// format's order). Each table keeps its parts' dtype and the first part's description. A streaming
// k-way merge of the parts' sorted tables: memory is bounded by a read buffer per part (64 MiB over
// all) and one output block, never by the number of keys. More than 128 parts are merged in
// consecutive groups through temporary files "<out>.merge-L-G.tmp" (removed afterwards). `out` is
// written as "<out>.tmp" and renamed when complete (an existing `out` is replaced; it may itself be
// one of the parts). Throws Hdf5Error (a std::runtime_error) naming the file when a part is
// missing, invalid (including unsorted keys) or of another format version, when parts disagree on
// a table's dim or dtype, or when writing fails; `out` is then left as it was.
EmbeddingCacheMergeStats merge_embedding_caches(const std::vector<std::filesystem::path>& parts,
                                                const std::filesystem::path& out,
                                                const EmbeddingCacheMergeOptions& options = {});

}  // namespace clipshard
