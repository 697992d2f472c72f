#include "shard/cache/embedding_cache_merge.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

#include "shard/cache/embedding_cache_format.h"
#include "shard/cache/hdf5_handles.h"
#include "shard/cache/key_index.h"

namespace clipshard {

namespace fmt = cache_format;

namespace {

struct OutputTable {
  fmt::TableInfo info;  // dim and dtype of the first part holding it
  std::filesystem::path first_part;
  std::vector<std::pair<size_t, fmt::TableInfo>> sources;  // (part, its info), in part order
};

// Removes the temporary file unless released (the merge succeeded).
struct TempFileGuard {
  std::filesystem::path path;
  bool armed = true;
  ~TempFileGuard() {
    if (!armed) return;
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

EmbeddingCacheMergeStats merge_embedding_caches(const std::vector<std::filesystem::path>& parts,
                                                const std::filesystem::path& out,
                                                const EmbeddingCacheMergeOptions& options) {
  if (options.gzip_level < 0 || options.gzip_level > 9)
    throw std::invalid_argument("embedding cache gzip_level must be 0..9, got " +
                                std::to_string(options.gzip_level));
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  EmbeddingCacheMergeStats stats;
  stats.parts = static_cast<int64_t>(parts.size());

  // 1. Catalogue: every part's tables, checked for agreement before anything is written.
  std::vector<OutputTable> tables;
  std::map<CacheTable, size_t> by_table;
  for (size_t p = 0; p < parts.size(); ++p) {
    H5File file = fmt::open_file(parts[p]);
    for (fmt::TableInfo& info : fmt::list_tables(file.get(), parts[p])) {
      auto [it, inserted] = by_table.emplace(info.table, tables.size());
      if (inserted) tables.push_back({info, parts[p], {}});
      OutputTable& t = tables[it->second];
      if (info.dim != t.info.dim || info.dtype != t.info.dtype) {
        throw Hdf5Error("cannot merge embedding caches: table " + info.table.to_string() + " is " +
                        fmt::dtype_name(t.info.dtype) + "[" + std::to_string(t.info.dim) + "] in " +
                        t.first_part.string() + " but " + fmt::dtype_name(info.dtype) + "[" +
                        std::to_string(info.dim) + "] in " + parts[p].string() +
                        " (parts written with different settings or models)");
      }
      if (info.rows > 0) t.sources.emplace_back(p, std::move(info));
    }
  }

  // 2. Copy table by table (one key set in memory at a time), part by part, block by block.
  const std::filesystem::path temp = fmt::temp_path_for(out);
  TempFileGuard guard{temp};
  {
    H5File output = fmt::create_file(temp);
    std::vector<uint64_t> keys, rows, kept_keys, kept_rows;
    std::vector<char> embeddings, kept_embeddings;
    for (const OutputTable& t : tables) {
      const size_t row_bytes = static_cast<size_t>(t.info.dim) * fmt::dtype_size(t.info.dtype);
      fmt::TableAppender appender(output.get(), temp, t.info.table, t.info.dim, t.info.dtype,
                                  options.gzip_level);
      KeyIndex seen;
      int64_t total = 0;
      for (const auto& source : t.sources) total += source.second.rows;
      seen.reserve(static_cast<size_t>(total));
      kept_keys.clear();
      kept_rows.clear();
      kept_embeddings.clear();
      auto flush = [&] {
        appender.append(kept_keys.data(), kept_rows.data(), kept_embeddings.data(),
                        kept_rows.size());
        kept_keys.clear();
        kept_rows.clear();
        kept_embeddings.clear();
      };
      for (const auto& [p, info] : t.sources) {
        H5File file = fmt::open_file(parts[p]);
        fmt::TableSource source(file.get(), parts[p], info);
        for (int64_t start = 0; start < info.rows; start += fmt::kBlockRows) {
          const size_t n =
              static_cast<size_t>(std::min<int64_t>(fmt::kBlockRows, info.rows - start));
          keys.resize(2 * n);
          rows.resize(n);
          embeddings.resize(n * row_bytes);
          source.read_keys(start, n, keys.data());
          source.read_rows(start, n, rows.data());
          source.read_embeddings(start, n, embeddings.data());
          for (size_t i = 0; i < n; ++i) {
            if (!seen.insert({keys[2 * i], keys[2 * i + 1]}, 0)) {
              ++stats.duplicates;
              continue;
            }
            kept_keys.push_back(keys[2 * i]);
            kept_keys.push_back(keys[2 * i + 1]);
            kept_rows.push_back(rows[i]);
            kept_embeddings.insert(kept_embeddings.end(), embeddings.begin() + i * row_bytes,
                                   embeddings.begin() + (i + 1) * row_bytes);
            if (kept_rows.size() == static_cast<size_t>(fmt::kBlockRows)) flush();
          }
        }
      }
      if (!kept_rows.empty()) flush();
      stats.entries += appender.rows();
      appender.close();
    }
    stats.tables = static_cast<int64_t>(tables.size());
    output.close(temp, "closing the merged embedding cache (disk full?)");
  }
  fmt::fsync_and_rename(temp, out);
  guard.armed = false;
  return stats;
}

}  // namespace clipshard
