// Embedding cache at scale (docs/PERFORMANCE.md, "Embedding cache"): builds a cache of N keys the
// way a run does (per-shard parts written by EmbeddingCacheWriter, merged by
// merge_embedding_caches), then measures lookups in a separate process: lookups/s for hits and
// misses, one key at a time in random order and shard-batched (lookup_batch), and the looking-up
// process's peak RSS. Small embeddings (dim 8, float16) keep the files small: the key search, not
// the embedding bytes, is what grows with N.
//
//   cache_lookup build N DIR [PARTS]   writes DIR/part-*.h5, merges them into DIR/cache.h5, deletes
//                                      the parts; prints write and merge times
//   cache_lookup lookup DIR/cache.h5 [QUERIES]   prints lookups/s and VmHWM (peak RSS)
//
// Key i is the XXH3-128 of the 8 bytes of i: keys 0..N-1 are in the cache, N.. are misses.
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "shard/cache/content_key.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/embedding_cache_writer.h"

namespace {

using namespace clipshard;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kDim = 8;
const CacheTable kTable{"bench-model", "image", "hf224"};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

ContentKey key_of(uint64_t i) { return content_key(&i, sizeof i); }

void embedding_of(uint64_t i, float* out) {
  for (int d = 0; d < kDim; ++d) out[d] = static_cast<float>((i * 31 + d) % 1000) / 1000.0f;
}

// Peak resident set size of this process (VmHWM), in MiB.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

double rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

int build(uint64_t n, const fs::path& dir, uint64_t parts) {
  fs::create_directories(dir);
  std::vector<fs::path> paths;
  EmbeddingCacheWriterOptions options;
  options.lossy_fp16 = true;
  float embedding[kDim];
  auto t = Clock::now();
  for (uint64_t p = 0; p < parts; ++p) {
    paths.push_back(dir / ("part-" + std::to_string(p) + ".h5"));
    EmbeddingCacheWriter writer(paths.back(), options);
    for (uint64_t i = n * p / parts; i < n * (p + 1) / parts; ++i) {
      embedding_of(i, embedding);
      writer.add(kTable, key_of(i), i, embedding, kDim);
    }
    writer.commit();
  }
  const double write_s = seconds_since(t);
  t = Clock::now();
  const auto stats = merge_embedding_caches(paths, dir / "cache.h5");
  const double merge_s = seconds_since(t);
  uintmax_t part_bytes = 0;
  for (const auto& p : paths) part_bytes += fs::file_size(p);
  for (const auto& p : paths) fs::remove(p);
  std::printf(
      "build keys=%llu parts=%llu write_s=%.1f (%.0f keys/s) merge_s=%.1f (%.0f keys/s) "
      "parts_mib=%.0f cache_mib=%.0f entries=%lld peak_rss_mib=%.0f\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(parts), write_s,
      n / write_s, merge_s, n / merge_s, part_bytes / 1048576.0,
      fs::file_size(dir / "cache.h5") / 1048576.0, static_cast<long long>(stats.entries),
      peak_rss_mib());
  return 0;
}

int lookup(const fs::path& file, uint64_t queries) {
  const double rss_start = rss_mib();
  EmbeddingCacheReader reader(file);
  const uint64_t n = static_cast<uint64_t>(reader.size(kTable));
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> pick(0, n - 1);
  std::vector<float> out(kDim), expected(kDim);
  auto one_by_one = [&](bool hits) {
    int64_t found = 0;
    const auto t = Clock::now();
    for (uint64_t q = 0; q < queries; ++q) {
      const uint64_t i = hits ? pick(rng) : n + pick(rng);
      if (reader.lookup(kTable, key_of(i), out.data(), kDim)) {
        ++found;
        embedding_of(i, expected.data());
        if (std::abs(out[1] - expected[1]) > 1e-3f) {
          std::fprintf(stderr, "wrong embedding for key %llu\n",
                       static_cast<unsigned long long>(i));
          std::exit(1);
        }
      }
    }
    const double s = seconds_since(t);
    std::printf("  %-28s %10.0f lookups/s  (%lld of %llu found)\n",
                hits ? "random hits, one by one" : "random misses, one by one", queries / s,
                static_cast<long long>(found), static_cast<unsigned long long>(queries));
  };
  // A shard's keys: kShard random keys looked up together (sorted inside lookup_batch).
  constexpr size_t kShard = 10000;
  auto batched = [&](bool hits) {
    std::vector<ContentKey> keys(kShard);
    std::vector<float> embeddings(kShard * kDim);
    std::unique_ptr<bool[]> found_flags(new bool[kShard]);
    int64_t found = 0;
    const auto t = Clock::now();
    for (uint64_t q = 0; q < queries; q += kShard) {
      for (auto& k : keys) k = key_of(hits ? pick(rng) : n + pick(rng));
      found += reader.lookup_batch(kTable, keys.data(), kShard, embeddings.data(), kDim,
                                   found_flags.get());
    }
    const double s = seconds_since(t);
    const uint64_t done = (queries + kShard - 1) / kShard * kShard;
    std::printf("  %-28s %10.0f lookups/s  (%lld of %llu found)\n",
                hits ? "shard-batched hits" : "shard-batched misses", done / s,
                static_cast<long long>(found), static_cast<unsigned long long>(done));
  };
  const auto t_open = Clock::now();
  out.assign(kDim, 0.0f);
  reader.lookup(kTable, key_of(0), out.data(), kDim);  // loads the fence
  std::printf("lookup file=%s keys=%llu first_lookup_ms=%.1f\n", file.c_str(),
              static_cast<unsigned long long>(n), 1000.0 * seconds_since(t_open));
  one_by_one(true);
  one_by_one(false);
  batched(true);
  batched(false);
  std::printf("  rss_at_start_mib=%.1f peak_rss_mib=%.1f\n", rss_start, peak_rss_mib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "build" && argc >= 4) {
      const uint64_t n = std::stoull(argv[2]);
      const uint64_t parts = argc > 4 ? std::stoull(argv[4]) : std::max<uint64_t>(1, n / 100000);
      return build(n, argv[3], parts);
    }
    if (mode == "lookup" && argc >= 3)
      return lookup(argv[2], argc > 3 ? std::stoull(argv[3]) : 200000);
    std::fprintf(stderr, "usage: %s build N DIR [PARTS] | lookup FILE [QUERIES]\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cache_lookup: %s\n", e.what());
    return 1;
  }
}
