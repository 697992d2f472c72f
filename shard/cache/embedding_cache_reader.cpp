#include "shard/cache/embedding_cache_reader.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "shard/cache/embedding_cache_format.h"
#include "shard/cache/half_float.h"
#include "shard/cache/hdf5_handles.h"
#include "shard/cache/key_index.h"

namespace clipshard {

namespace fmt = cache_format;

namespace {

// Index values pack (source, position): 24 bits of source, 40 bits of position.
constexpr int kPositionBits = 40;
constexpr uint64_t kPositionMask = (uint64_t{1} << kPositionBits) - 1;
constexpr size_t kIndexBlockRows = 64 * 1024;

// A table's part in one file.
struct Source {
  size_t file = 0;
  fmt::TableInfo info;
  std::unique_ptr<fmt::TableSource> datasets;  // opened with the index
};

struct Table {
  int dim = 0;
  bool lossy = false;
  std::vector<Source> sources;  // in file order
  bool indexed = false;
  KeyIndex index;
};

}  // namespace

struct EmbeddingCacheReader::Impl {
  std::vector<std::filesystem::path> paths;
  std::vector<H5File> files;
  std::map<CacheTable, Table> tables;  // destroyed before `files` (declared after)
  std::vector<uint16_t> half_row;

  Table* find(const CacheTable& table) {
    auto it = tables.find(table);
    return it == tables.end() ? nullptr : &it->second;
  }

  void load_index(Table& t) {
    if (t.indexed) return;
    int64_t total = 0;
    for (const Source& s : t.sources) total += s.info.rows;
    t.index.reserve(static_cast<size_t>(total));
    std::vector<uint64_t> keys;
    for (size_t si = 0; si < t.sources.size(); ++si) {
      Source& s = t.sources[si];
      s.datasets = std::make_unique<fmt::TableSource>(files[s.file].get(), paths[s.file], s.info);
      for (int64_t start = 0; start < s.info.rows; start += kIndexBlockRows) {
        const size_t n =
            static_cast<size_t>(std::min<int64_t>(kIndexBlockRows, s.info.rows - start));
        keys.resize(2 * n);
        s.datasets->read_keys(start, n, keys.data());
        for (size_t i = 0; i < n; ++i) {
          const uint64_t value = (static_cast<uint64_t>(si) << kPositionBits) |
                                 static_cast<uint64_t>(start + static_cast<int64_t>(i));
          t.index.insert({keys[2 * i], keys[2 * i + 1]}, value);
        }
      }
    }
    t.indexed = true;
  }
};

EmbeddingCacheReader::EmbeddingCacheReader(const std::filesystem::path& path)
    : EmbeddingCacheReader(std::vector<std::filesystem::path>{path}) {}

EmbeddingCacheReader::EmbeddingCacheReader(const std::vector<std::filesystem::path>& paths)
    : impl_(std::make_unique<Impl>()) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Impl& m = *impl_;
  try {
    if (paths.size() >= (size_t{1} << (64 - kPositionBits)))
      throw std::invalid_argument("EmbeddingCacheReader: too many files");
    m.paths = paths;
    for (size_t f = 0; f < paths.size(); ++f) {
      m.files.push_back(fmt::open_file(paths[f]));
      for (fmt::TableInfo& info : fmt::list_tables(m.files.back().get(), paths[f])) {
        if (static_cast<uint64_t>(info.rows) > kPositionMask)
          throw Hdf5Error(paths[f].string() + ": table " + info.table.to_string() + " too large");
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
        t.sources.push_back({f, std::move(info), nullptr});
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
  m.load_index(*t);
  const uint64_t* value = t->index.find(key);
  if (!value) return false;
  Source& s = t->sources[*value >> kPositionBits];
  const int64_t position = static_cast<int64_t>(*value & kPositionMask);
  if (s.info.dtype == fmt::DType::kFloat16) {
    m.half_row.resize(t->dim);
    s.datasets->read_embeddings(position, 1, m.half_row.data());
    halves_to_floats(m.half_row.data(), out, t->dim);
  } else {
    s.datasets->read_embeddings(position, 1, out);
  }
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

bool EmbeddingCacheReader::contains(const CacheTable& table, const ContentKey& key) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  Table* t = impl_->find(table);
  if (!t) return false;
  impl_->load_index(*t);
  return t->index.contains(key);
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
  impl_->load_index(*t);
  return static_cast<int64_t>(t->index.size());
}

int EmbeddingCacheReader::dim(const CacheTable& table) const {
  auto it = impl_->tables.find(table);
  return it == impl_->tables.end() ? 0 : it->second.dim;
}

bool EmbeddingCacheReader::lossy(const CacheTable& table) const {
  auto it = impl_->tables.find(table);
  return it != impl_->tables.end() && it->second.lossy;
}

}  // namespace clipshard
