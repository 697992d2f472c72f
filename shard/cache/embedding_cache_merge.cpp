#include "shard/cache/embedding_cache_merge.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

#include "shard/cache/embedding_cache_format.h"
#include "shard/cache/hdf5_handles.h"

namespace clipshard {

namespace fmt = cache_format;

namespace {

struct OutputTable {
  fmt::TableInfo info;  // dim, dtype and description of the first part holding it
  std::filesystem::path first_part;
  std::vector<std::pair<size_t, fmt::TableInfo>> sources;  // (part, its info), in part order
};

// Removes the temporary files unless released (the merge succeeded).
struct TempFileGuard {
  std::vector<std::filesystem::path> paths;
  bool armed = true;
  ~TempFileGuard() {
    if (!armed) return;
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove(p, ec);
  }
};

// More parts than this are merged in groups first, into temporary files: each open part holds a
// file descriptor and HDF5 metadata, and the process's descriptor limit is often 1024.
constexpr size_t kMaxFanIn = 128;
// What all sources of one table may hold in read buffers together (each at least 16 rows).
constexpr size_t kReadBufferBytes = 64 * 1024 * 1024;

// One part's table, read in blocks: its keys are strictly increasing (checked).
struct Cursor {
  size_t part = 0;
  std::unique_ptr<fmt::TableSource> source;
  int64_t rows = 0, start = 0;  // block [start, start + n) is loaded
  size_t n = 0, i = 0;          // entries in the block, the current one
  size_t block_rows = 0, row_bytes = 0;
  std::vector<uint64_t> keys, row_ids;
  std::vector<char> embeddings;
  bool has_previous = false;
  ContentKey previous{};

  ContentKey key() const { return {keys[2 * i], keys[2 * i + 1]}; }
  // Moves to the next entry, loading the next block when needed. False at the end.
  bool advance() {
    if (++i < n) return check();
    start += static_cast<int64_t>(n);
    if (start >= rows) return false;
    n = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(block_rows), rows - start));
    i = 0;
    keys.resize(2 * n);
    row_ids.resize(n);
    embeddings.resize(n * row_bytes);
    source->read_keys(start, n, keys.data());
    source->read_rows(start, n, row_ids.data());
    source->read_embeddings(start, n, embeddings.data());
    return check();
  }
  bool check() {
    const ContentKey k = key();
    if (has_previous && !(previous < k)) source->fail_layout("keys not sorted or not unique");
    previous = k;
    has_previous = true;
    return true;
  }
};

EmbeddingCacheMergeStats merge_flat(const std::vector<std::filesystem::path>& parts,
                                    const std::filesystem::path& temp,
                                    const EmbeddingCacheMergeOptions& options) {
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

  // 2. Table by table, a k-way merge of the parts' sorted keys; of equal keys the earliest part
  // wins. Memory: one read buffer per part (kReadBufferBytes over all) and one output block.
  H5File output = fmt::create_file(temp);
  std::vector<uint64_t> kept_keys, kept_rows;
  std::vector<char> kept_embeddings;
  for (const OutputTable& t : tables) {
    const size_t row_bytes = static_cast<size_t>(t.info.dim) * fmt::dtype_size(t.info.dtype);
    fmt::TableAppender appender(output.get(), temp, t.info.table, t.info.dim, t.info.dtype,
                                options.gzip_level, t.info.description);
    std::vector<H5File> files;
    std::vector<Cursor> cursors(t.sources.size());
    const size_t per_source = kReadBufferBytes / std::max<size_t>(1, t.sources.size()) /
                              (row_bytes + 3 * sizeof(uint64_t));
    const size_t block_rows =
        std::clamp<size_t>(per_source, 16, static_cast<size_t>(fmt::kBlockRows));
    for (size_t c = 0; c < t.sources.size(); ++c) {
      const auto& [p, info] = t.sources[c];
      files.push_back(fmt::open_file(parts[p]));
      Cursor& cur = cursors[c];
      cur.part = p;
      cur.source = std::make_unique<fmt::TableSource>(files.back().get(), parts[p], info);
      cur.rows = info.rows;
      cur.block_rows = block_rows;
      cur.row_bytes = row_bytes;
      cur.i = 0;
      cur.n = 0;
      cur.advance();  // loads the first block (rows > 0)
    }
    // Min-heap of cursor indices by (key, part).
    auto later = [&](size_t a, size_t b) {
      const ContentKey ka = cursors[a].key(), kb = cursors[b].key();
      if (ka != kb) return kb < ka;
      return cursors[a].part > cursors[b].part;
    };
    std::vector<size_t> heap;
    for (size_t c = 0; c < cursors.size(); ++c) heap.push_back(c);
    std::make_heap(heap.begin(), heap.end(), later);
    auto flush = [&] {
      appender.append(kept_keys.data(), kept_rows.data(), kept_embeddings.data(), kept_rows.size());
      kept_keys.clear();
      kept_rows.clear();
      kept_embeddings.clear();
    };
    bool has_last = false;
    ContentKey last{};
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Cursor& cur = cursors[heap.back()];
      const ContentKey key = cur.key();
      if (has_last && key == last) {
        ++stats.duplicates;
      } else {
        kept_keys.push_back(key.hi);
        kept_keys.push_back(key.lo);
        kept_rows.push_back(cur.row_ids[cur.i]);
        const char* e = cur.embeddings.data() + cur.i * row_bytes;
        kept_embeddings.insert(kept_embeddings.end(), e, e + row_bytes);
        if (kept_rows.size() == static_cast<size_t>(fmt::kBlockRows)) flush();
        last = key;
        has_last = true;
      }
      if (cur.advance()) {
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
    if (!kept_rows.empty()) flush();
    stats.entries += appender.rows();
    appender.close();
    cursors.clear();
    files.clear();
  }
  stats.tables = static_cast<int64_t>(tables.size());
  output.close(temp, "closing the merged embedding cache (disk full?)");
  return stats;
}

}  // namespace

EmbeddingCacheMergeStats merge_embedding_caches(const std::vector<std::filesystem::path>& parts,
                                                const std::filesystem::path& out,
                                                const EmbeddingCacheMergeOptions& options) {
  if (options.gzip_level < 0 || options.gzip_level > 9)
    throw std::invalid_argument("embedding cache gzip_level must be 0..9, got " +
                                std::to_string(options.gzip_level));
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  const std::filesystem::path temp = fmt::temp_path_for(out);
  TempFileGuard guard{{temp}};
  std::vector<std::filesystem::path> inputs = parts;
  int64_t duplicates = 0;
  // Consecutive groups keep "the earliest part wins": a group's file stands where its parts were.
  for (int level = 0; inputs.size() > kMaxFanIn; ++level) {
    std::vector<std::filesystem::path> next;
    for (size_t g = 0; g < inputs.size(); g += kMaxFanIn) {
      const std::vector<std::filesystem::path> group(
          inputs.begin() + static_cast<std::ptrdiff_t>(g),
          inputs.begin() + static_cast<std::ptrdiff_t>(std::min(inputs.size(), g + kMaxFanIn)));
      // Ends in ".tmp": a run directory's cleanup removes what a killed merge leaves.
      std::filesystem::path group_file = out.string() + ".merge-" + std::to_string(level) + "-" +
                                         std::to_string(g / kMaxFanIn) + ".tmp";
      guard.paths.push_back(group_file);
      duplicates += merge_flat(group, group_file, options).duplicates;
      next.push_back(group_file);
    }
    if (level > 0) {  // the previous level's group files are merged now
      std::error_code ec;
      for (const auto& p : inputs) std::filesystem::remove(p, ec);
    }
    inputs = std::move(next);
  }
  EmbeddingCacheMergeStats stats = merge_flat(inputs, temp, options);
  stats.parts = static_cast<int64_t>(parts.size());
  stats.duplicates += duplicates;
  fmt::fsync_and_rename(temp, out);
  guard.armed = false;
  std::error_code ec;
  for (size_t i = 1; i < guard.paths.size(); ++i) std::filesystem::remove(guard.paths[i], ec);
  return stats;
}

}  // namespace clipshard
