#include "shard/cache/embedding_cache_writer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <vector>

#include "shard/cache/embedding_cache_format.h"
#include "shard/cache/half_float.h"
#include "shard/cache/hdf5_handles.h"
#include "shard/cache/key_index.h"
#include "shard/check.h"

namespace clipshard {

namespace fmt = cache_format;

namespace {

// One table being written: its key set and every entry, in add order until commit() sorts them.
struct PendingTable {
  CacheTable table;
  int dim = 0;
  fmt::DType dtype = fmt::DType::kFloat32;
  KeyIndex keys;
  std::vector<uint64_t> key_list;  // (hi, lo) pairs
  std::vector<uint64_t> row_list;
  std::vector<float> f32_list;
  std::vector<uint16_t> f16_list;

  // Writes the entries in key order, in blocks of kBlockRows.
  void write(hid_t file, const std::filesystem::path& temp, int gzip_level,
             const TableDescription& description) const {
    const size_t n = row_list.size();
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return ContentKey{key_list[2 * a], key_list[2 * a + 1]} <
             ContentKey{key_list[2 * b], key_list[2 * b + 1]};
    });
    fmt::TableAppender appender(file, temp, table, dim, dtype, gzip_level, description);
    const size_t block = static_cast<size_t>(fmt::kBlockRows);
    const size_t row_bytes = static_cast<size_t>(dim) * fmt::dtype_size(dtype);
    const char* source = dtype == fmt::DType::kFloat16
                             ? reinterpret_cast<const char*>(f16_list.data())
                             : reinterpret_cast<const char*>(f32_list.data());
    std::vector<uint64_t> keys, rows;
    std::vector<char> embeddings;
    for (size_t b0 = 0; b0 < n; b0 += block) {
      const size_t b1 = std::min(n, b0 + block);
      keys.clear();
      rows.clear();
      embeddings.resize((b1 - b0) * row_bytes);
      for (size_t j = b0; j < b1; ++j) {
        const size_t i = order[j];
        keys.push_back(key_list[2 * i]);
        keys.push_back(key_list[2 * i + 1]);
        rows.push_back(row_list[i]);
        std::memcpy(embeddings.data() + (j - b0) * row_bytes, source + i * row_bytes, row_bytes);
      }
      appender.append(keys.data(), rows.data(), embeddings.data(), b1 - b0);
    }
    appender.close();
  }
};

}  // namespace

struct EmbeddingCacheWriter::Impl {
  std::filesystem::path path;
  std::filesystem::path temp;
  EmbeddingCacheWriterOptions options;
  int64_t entries = 0;
  bool committed = false;
  // Declared before the tables: destroyed after them (HDF5 closes a file only when its objects
  // are).
  H5File file;
  std::vector<std::unique_ptr<PendingTable>> tables;
  std::map<CacheTable, PendingTable*> by_table;
  std::map<CacheTable, TableDescription> descriptions;

  // Closes every HDF5 handle, ignoring errors, and deletes the temporary file.
  void discard() noexcept {
    tables.clear();
    by_table.clear();
    file.reset();
    std::error_code ec;
    std::filesystem::remove(temp, ec);
  }
};

EmbeddingCacheWriter::EmbeddingCacheWriter(const std::filesystem::path& path,
                                           EmbeddingCacheWriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.gzip_level < 0 || options.gzip_level > 9)
    throw std::invalid_argument("embedding cache gzip_level must be 0..9, got " +
                                std::to_string(options.gzip_level));
  impl_->path = path;
  impl_->temp = fmt::temp_path_for(path);
  impl_->options = options;
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  try {
    impl_->file = fmt::create_file(impl_->temp);
  } catch (...) {
    impl_->discard();
    throw;
  }
}

EmbeddingCacheWriter::~EmbeddingCacheWriter() {
  if (!impl_ || impl_->committed) return;
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  impl_->discard();
}

bool EmbeddingCacheWriter::add(const CacheTable& table, const ContentKey& key, uint64_t row,
                               const float* embedding, int dim) {
  Impl& m = *impl_;
  CLIPSHARD_CHECK(!m.committed && m.file, "EmbeddingCacheWriter::add after commit() (",
                  m.path.string(), ")");
  if (dim <= 0)
    throw std::invalid_argument("embedding cache " + m.path.string() + ": table " +
                                table.to_string() + ": dim must be positive");
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  auto it = m.by_table.find(table);
  PendingTable* t;
  if (it == m.by_table.end()) {
    fmt::validate_table(table);
    auto pending = std::make_unique<PendingTable>();
    pending->table = table;
    pending->dim = dim;
    pending->dtype = m.options.lossy_fp16 ? fmt::DType::kFloat16 : fmt::DType::kFloat32;
    t = pending.get();
    m.tables.push_back(std::move(pending));
    m.by_table.emplace(table, t);
  } else {
    t = it->second;
    if (dim != t->dim)
      throw std::invalid_argument("embedding cache " + m.path.string() + ": table " +
                                  table.to_string() + " has dim " + std::to_string(t->dim) +
                                  ", got an embedding of " + std::to_string(dim));
  }
  // The sort in commit() indexes entries with 32 bits.
  if (t->row_list.size() >= std::numeric_limits<uint32_t>::max())
    throw std::invalid_argument("embedding cache " + m.path.string() + ": table " +
                                table.to_string() + " has too many entries for one writer");
  if (!t->keys.insert(key, 0)) return false;
  t->key_list.push_back(key.hi);
  t->key_list.push_back(key.lo);
  t->row_list.push_back(row);
  if (t->dtype == fmt::DType::kFloat16) {
    const size_t at = t->f16_list.size();
    t->f16_list.resize(at + dim);
    floats_to_halves(embedding, t->f16_list.data() + at, dim);
  } else {
    t->f32_list.insert(t->f32_list.end(), embedding, embedding + dim);
  }
  ++m.entries;
  return true;
}

void EmbeddingCacheWriter::describe(const CacheTable& table, const TableDescription& description) {
  Impl& m = *impl_;
  if (m.committed || !m.file)
    throw std::logic_error("EmbeddingCacheWriter::describe after commit() (" + m.path.string() +
                           ")");
  fmt::validate_table(table);
  m.descriptions[table] = description;
}

void EmbeddingCacheWriter::commit() {
  Impl& m = *impl_;
  CLIPSHARD_CHECK(!m.committed, "EmbeddingCacheWriter::commit called twice");
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  try {
    for (const auto& t : m.tables) {
      auto d = m.descriptions.find(t->table);
      t->write(m.file.get(), m.temp, m.options.gzip_level,
               d == m.descriptions.end() ? TableDescription{} : d->second);
    }
    m.tables.clear();
    m.by_table.clear();
    m.file.close(m.temp, "closing the embedding cache file (disk full?)");
    fmt::fsync_and_rename(m.temp, m.path);
    m.committed = true;
  } catch (...) {
    m.discard();
    throw;
  }
}

int64_t EmbeddingCacheWriter::size() const { return impl_->entries; }

const std::filesystem::path& EmbeddingCacheWriter::path() const { return impl_->path; }

}  // namespace clipshard
