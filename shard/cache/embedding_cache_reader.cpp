#include "shard/cache/embedding_cache_reader.h"

#include <algorithm>
#include <list>
#include <map>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include "shard/cache/embedding_cache_format.h"
#include "shard/cache/half_float.h"
#include "shard/cache/hdf5_handles.h"

namespace clipshard {

namespace fmt = cache_format;

namespace {

// Blocks of keys (kFenceRows keys, 16 KiB) kept by a reader over all its tables: 4 MiB. A batch
// of sorted lookups reads each block once; random lookups into a large table mostly miss it.
constexpr size_t kCachedBlocks = 256;

// A table's part in one file: its fence (every kFenceRows-th key) in memory, the rest on disk.
struct Source {
  size_t file = 0;
  fmt::TableInfo info;
  std::unique_ptr<fmt::TableSource> datasets;  // opened on first use, with the fence
  std::vector<ContentKey> fence;
};

struct Table {
  int dim = 0;
  bool lossy = false;
  std::vector<Source> sources;  // in file order
  bool opened = false;
  int64_t distinct = -1;  // size(), once counted
};

// Identifies a block of keys: (source's unique number, block index).
struct BlockId {
  uint64_t source = 0;
  int64_t block = 0;
  bool operator==(const BlockId& o) const { return source == o.source && block == o.block; }
};
struct BlockIdHash {
  size_t operator()(const BlockId& id) const {
    return static_cast<size_t>(id.source * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(id.block));
  }
};

}  // namespace

struct EmbeddingCacheReader::Impl {
  std::vector<std::filesystem::path> paths;
  std::vector<H5File> files;
  std::map<CacheTable, Table> tables;  // destroyed before `files` (declared after)
  std::vector<uint16_t> half_row;
  // LRU of key blocks: most recent first.
  std::list<std::pair<BlockId, std::vector<ContentKey>>> blocks;
  std::unordered_map<BlockId, decltype(blocks)::iterator, BlockIdHash> block_index;
  std::map<const Source*, uint64_t> source_numbers;

  Table* find(const CacheTable& table) {
    auto it = tables.find(table);
    return it == tables.end() ? nullptr : &it->second;
  }

  // Opens the table's datasets and loads its fences (16 bytes per kFenceRows keys).
  void open(Table& t) {
    if (t.opened) return;
    for (Source& s : t.sources) {
      s.datasets = std::make_unique<fmt::TableSource>(files[s.file].get(), paths[s.file], s.info);
      const std::vector<uint64_t> raw = s.datasets->read_fence();
      s.fence.resize(raw.size() / 2);
      for (size_t i = 0; i < s.fence.size(); ++i) s.fence[i] = {raw[2 * i], raw[2 * i + 1]};
      source_numbers.emplace(&s, source_numbers.size());
    }
    t.opened = true;
  }

  // The keys of block `b` of source `s`, read on a cache miss and checked against the fence.
  const std::vector<ContentKey>& block(Source& s, int64_t b) {
    const BlockId id{source_numbers.at(&s), b};
    auto hit = block_index.find(id);
    if (hit != block_index.end()) {
      blocks.splice(blocks.begin(), blocks, hit->second);
      return hit->second->second;
    }
    const int64_t start = b * fmt::kFenceRows;
    const size_t n = static_cast<size_t>(std::min<int64_t>(fmt::kFenceRows, s.info.rows - start));
    std::vector<uint64_t> raw(2 * n);
    s.datasets->read_keys(start, n, raw.data());
    std::vector<ContentKey> keys(n);
    for (size_t i = 0; i < n; ++i) keys[i] = {raw[2 * i], raw[2 * i + 1]};
    if (keys.front() != s.fence[static_cast<size_t>(b)])
      s.datasets->fail_layout("block " + std::to_string(b) + " does not start with its fence key");
    for (size_t i = 1; i < n; ++i)
      if (!(keys[i - 1] < keys[i])) s.datasets->fail_layout("keys not sorted or not unique");
    if (blocks.size() >= kCachedBlocks) {
      block_index.erase(blocks.back().first);
      blocks.pop_back();
    }
    blocks.emplace_front(id, std::move(keys));
    block_index[id] = blocks.begin();
    return blocks.front().second;
  }

  // The key's position in source `s`, or -1.
  int64_t position(Source& s, const ContentKey& key) {
    if (s.fence.empty() || key < s.fence.front()) return -1;
    // The last fence key <= key names the only block that can hold it.
    const auto f = std::upper_bound(s.fence.begin(), s.fence.end(), key) - 1;
    const int64_t b = f - s.fence.begin();
    const std::vector<ContentKey>& keys = block(s, b);
    const auto it = std::lower_bound(keys.begin(), keys.end(), key);
    if (it == keys.end() || *it != key) return -1;
    return b * fmt::kFenceRows + (it - keys.begin());
  }

  // The first source holding the key and its position there, or (nullptr, -1).
  std::pair<Source*, int64_t> locate(Table& t, const ContentKey& key) {
    for (Source& s : t.sources) {
      const int64_t p = position(s, key);
      if (p >= 0) return {&s, p};
    }
    return {nullptr, -1};
  }

  void read_embedding(const Table& t, Source& s, int64_t position, float* out) {
    if (s.info.dtype == fmt::DType::kFloat16) {
      half_row.resize(t.dim);
      s.datasets->read_embeddings(position, 1, half_row.data());
      halves_to_floats(half_row.data(), out, t.dim);
    } else {
      s.datasets->read_embeddings(position, 1, out);
    }
  }

  // Distinct keys over the sources: a merge walk of their sorted keys, block by block.
  int64_t count_distinct(Table& t) {
    if (t.sources.size() == 1) return t.sources.front().info.rows;
    struct Walk {
      Source* s;
      int64_t next = 0;  // position of the next key
      std::vector<uint64_t> raw;
      size_t i = 0;
    };
    std::vector<Walk> walks;
    for (Source& s : t.sources)
      if (s.info.rows > 0) walks.push_back({&s, 0, {}, 0});
    auto key_of = [](const Walk& w) { return ContentKey{w.raw[2 * w.i], w.raw[2 * w.i + 1]}; };
    auto load = [](Walk& w) {
      const size_t n =
          static_cast<size_t>(std::min<int64_t>(fmt::kBlockRows, w.s->info.rows - w.next));
      w.raw.resize(2 * n);
      w.s->datasets->read_keys(w.next, n, w.raw.data());
      w.next += static_cast<int64_t>(n);
      w.i = 0;
    };
    for (Walk& w : walks) load(w);
    int64_t distinct = 0;
    bool has_last = false;
    ContentKey last{};
    while (!walks.empty()) {
      size_t best = 0;
      for (size_t w = 1; w < walks.size(); ++w)
        if (key_of(walks[w]) < key_of(walks[best])) best = w;
      const ContentKey k = key_of(walks[best]);
      if (!has_last || k != last) ++distinct;
      last = k;
      has_last = true;
      Walk& w = walks[best];
      if (++w.i * 2 >= w.raw.size()) {
        if (w.next >= w.s->info.rows) {
          walks.erase(walks.begin() + static_cast<std::ptrdiff_t>(best));
          continue;
        }
        load(w);
      }
    }
    return distinct;
  }
};

EmbeddingCacheReader::EmbeddingCacheReader(const std::filesystem::path& path)
    : EmbeddingCacheReader(std::vector<std::filesystem::path>{path}) {}

EmbeddingCacheReader::EmbeddingCacheReader(const std::vector<std::filesystem::path>& paths)
    : impl_(std::make_unique<Impl>()) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  try {
    m.paths = paths;
    for (size_t f = 0; f < paths.size(); ++f) {
      m.files.push_back(fmt::open_file(paths[f]));
      for (fmt::TableInfo& info : fmt::list_tables(m.files.back().get(), paths[f])) {
        Table& t = m.tables[info.table];
        if (t.sources.empty()) {
          t.dim = info.dim;
        } else if (t.dim != info.dim) {
          const Source& first = t.sources.front();
          throw Hdf5Error("embedding caches disagree on table " + info.table.to_string() +
                          ": dim " + std::to_string(t.dim) + " in " + paths[first.file].string() +
                          ", " + std::to_string(info.dim) + " in " + paths[f].string() +
                          ". Remove the stale file from the reuse list.");
        }
        if (info.dtype == fmt::DType::kFloat16) t.lossy = true;
        t.sources.push_back({f, std::move(info), nullptr, {}});
      }
    }
  } catch (...) {
    m.tables.clear();
    m.files.clear();
    throw;
  }
}

EmbeddingCacheReader::~EmbeddingCacheReader() {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  impl_->tables.clear();
  impl_->files.clear();
}

bool EmbeddingCacheReader::lookup(const CacheTable& table, const ContentKey& key, float* out,
                                  int dim) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  Table* t = m.find(table);
  if (!t) return false;
  if (dim != t->dim)
    throw std::invalid_argument("embedding cache table " + table.to_string() + " has dim " +
                                std::to_string(t->dim) + ", asked for " + std::to_string(dim));
  m.open(*t);
  const auto [source, position] = m.locate(*t, key);
  if (!source) return false;
  m.read_embedding(*t, *source, position, out);
  return true;
}

bool EmbeddingCacheReader::lookup(const CacheTable& table, const ContentKey& key,
                                  std::vector<float>* out) {
  const int d = dim(table);
  if (d == 0) return false;
  std::vector<float> embedding(d);
  if (!lookup(table, key, embedding.data(), d)) return false;
  *out = std::move(embedding);
  return true;
}

int64_t EmbeddingCacheReader::lookup_batch(const CacheTable& table, const ContentKey* keys,
                                           size_t n, float* out, int dim, bool* found) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  std::fill(found, found + n, false);
  Table* t = m.find(table);
  if (!t) return 0;
  if (dim != t->dim)
    throw std::invalid_argument("embedding cache table " + table.to_string() + " has dim " +
                                std::to_string(t->dim) + ", asked for " + std::to_string(dim));
  m.open(*t);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  int64_t hits = 0;
  for (size_t i : order) {
    const auto [source, position] = m.locate(*t, keys[i]);
    if (!source) continue;
    m.read_embedding(*t, *source, position, out + i * static_cast<size_t>(dim));
    found[i] = true;
    ++hits;
  }
  return hits;
}

bool EmbeddingCacheReader::contains(const CacheTable& table, const ContentKey& key) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Table* t = impl_->find(table);
  if (!t) return false;
  impl_->open(*t);
  return impl_->locate(*t, key).first != nullptr;
}

std::vector<CacheTable> EmbeddingCacheReader::tables() const {
  std::vector<CacheTable> out;
  for (const auto& entry : impl_->tables) out.push_back(entry.first);
  return out;
}

int64_t EmbeddingCacheReader::size(const CacheTable& table) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Table* t = impl_->find(table);
  if (!t) return 0;
  impl_->open(*t);
  if (t->distinct < 0) t->distinct = impl_->count_distinct(*t);
  return t->distinct;
}

int EmbeddingCacheReader::dim(const CacheTable& table) const {
  auto it = impl_->tables.find(table);
  return it == impl_->tables.end() ? 0 : it->second.dim;
}

bool EmbeddingCacheReader::lossy(const CacheTable& table) const {
  auto it = impl_->tables.find(table);
  return it != impl_->tables.end() && it->second.lossy;
}

TableDescription EmbeddingCacheReader::description(const CacheTable& table) const {
  auto it = impl_->tables.find(table);
  if (it == impl_->tables.end()) return {};
  return it->second.sources.front().info.description;
}

}  // namespace clipshard
