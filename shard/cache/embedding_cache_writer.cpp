#include "shard/cache/embedding_cache_writer.h"

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

// One table being written: the keys seen so far and a block of entries not yet appended.
struct PendingTable {
  CacheTable table;
  int dim = 0;
  fmt::DType dtype = fmt::DType::kFloat32;
  std::unique_ptr<fmt::TableAppender> appender;
  KeyIndex keys;
  std::vector<uint64_t> key_block;  // (hi, lo) pairs
  std::vector<uint64_t> row_block;
  std::vector<float> f32_block;
  std::vector<uint16_t> f16_block;

  size_t pending() const { return row_block.size(); }
  void flush() {
    if (row_block.empty()) return;
    const void* embeddings = dtype == fmt::DType::kFloat16
                                 ? static_cast<const void*>(f16_block.data())
                                 : static_cast<const void*>(f32_block.data());
    appender->append(key_block.data(), row_block.data(), embeddings, row_block.size());
    key_block.clear();
    row_block.clear();
    f32_block.clear();
    f16_block.clear();
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
    pending->appender = std::make_unique<fmt::TableAppender>(m.file.get(), m.temp, table, dim,
                                                             pending->dtype, m.options.gzip_level);
    // One allocation per block buffer: growing them by doubling costs page faults and copies that
    // dominated writing a 512-row part.
    pending->key_block.reserve(2 * fmt::kBlockRows);
    pending->row_block.reserve(fmt::kBlockRows);
    if (pending->dtype == fmt::DType::kFloat16)
      pending->f16_block.reserve(static_cast<size_t>(fmt::kBlockRows) * dim);
    else
      pending->f32_block.reserve(static_cast<size_t>(fmt::kBlockRows) * dim);
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
  if (!t->keys.insert(key, 0)) return false;
  t->key_block.push_back(key.hi);
  t->key_block.push_back(key.lo);
  t->row_block.push_back(row);
  if (t->dtype == fmt::DType::kFloat16) {
    const size_t at = t->f16_block.size();
    t->f16_block.resize(at + dim);
    floats_to_halves(embedding, t->f16_block.data() + at, dim);
  } else {
    t->f32_block.insert(t->f32_block.end(), embedding, embedding + dim);
  }
  ++m.entries;
  if (t->pending() >= static_cast<size_t>(fmt::kBlockRows)) t->flush();
  return true;
}

void EmbeddingCacheWriter::commit() {
  Impl& m = *impl_;
  CLIPSHARD_CHECK(!m.committed, "EmbeddingCacheWriter::commit called twice");
  std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
  try {
    for (auto& t : m.tables) {
      t->flush();
      t->appender->close();
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
