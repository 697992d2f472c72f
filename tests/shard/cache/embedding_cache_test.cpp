#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error_of.h"
#include "common/test_files.h"
#include "common/test_paths.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/embedding_cache_writer.h"
#include "shard/cache/half_float.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

const CacheTable kImageA{"modelA", "image", "hf224"};
const CacheTable kTextA{"modelA", "text", "hf77"};
const CacheTable kImageB{"openai/ViT-B-32", "image", "openai224"};  // '/' in a model id
const CacheTable kTextLong{"longclip-L", "text", "longclip248"};

ContentKey key_of(int i) { return content_key(&i, sizeof(i)); }

// Deterministic pseudo-random embedding for (table seed, item).
std::vector<float> embedding_of(int seed, int item, int dim) {
  std::vector<float> v(dim);
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + static_cast<uint32_t>(item) * 40503u + 1;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(static_cast<int32_t>(x)) / 2147483648.0f;  // [-1, 1)
  }
  return v;
}

void expect_same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

using testing::error_of;

TEST(EmbeddingCache, Float32RoundTripIsExact) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "part.h5";
  const int n = 10000, dim = 64;  // several 4096-entry blocks and a partial one
  {
    EmbeddingCacheWriter writer(path);
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(writer.add(kImageA, key_of(i), 1000 + i, embedding_of(1, i, dim).data(), dim));
    EXPECT_EQ(writer.size(), n);
    EXPECT_FALSE(fs::exists(path));  // not before commit
    writer.commit();
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EmbeddingCacheReader reader(path);
  EXPECT_EQ(reader.tables(), std::vector<CacheTable>{kImageA});
  EXPECT_EQ(reader.dim(kImageA), dim);
  EXPECT_FALSE(reader.lossy(kImageA));
  EXPECT_EQ(reader.size(kImageA), n);
  for (int i = 0; i < n; ++i) {
    std::vector<float> got;
    ASSERT_TRUE(reader.lookup(kImageA, key_of(i), &got)) << i;
    expect_same_floats(got, embedding_of(1, i, dim));
  }
  std::vector<float> untouched{7.0f};
  EXPECT_FALSE(reader.lookup(kImageA, key_of(n + 1), &untouched));
  EXPECT_EQ(untouched, std::vector<float>{7.0f});
  EXPECT_FALSE(reader.lookup(kTextA, key_of(0), &untouched));
  EXPECT_EQ(reader.size(kTextA), 0);
  float out[63];
  EXPECT_THROW(reader.lookup(kImageA, key_of(0), out, 63), std::invalid_argument);
}

TEST(EmbeddingCache, Float16RoundTripWithinHalfPrecision) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "part.h5";
  const int n = 5000, dim = 512;
  EmbeddingCacheWriterOptions options;
  options.lossy_fp16 = true;
  EmbeddingCacheWriter writer(path, options);
  for (int i = 0; i < n; ++i) writer.add(kTextA, key_of(i), i, embedding_of(2, i, dim).data(), dim);
  writer.commit();

  EmbeddingCacheReader reader(path);
  EXPECT_TRUE(reader.lossy(kTextA));
  double max_rel = 0.0;
  for (int i = 0; i < n; ++i) {
    std::vector<float> got(dim);
    ASSERT_TRUE(reader.lookup(kTextA, key_of(i), got.data(), dim));
    const auto want = embedding_of(2, i, dim);
    for (int j = 0; j < dim; ++j) {
      ASSERT_EQ(got[j], half_to_float(float_to_half(want[j])));  // exactly the rounded half
      if (std::abs(want[j]) >= 6.103515625e-05f)  // normal halves: relative error <= 2^-11
        max_rel = std::max(max_rel, std::abs(double(got[j]) - want[j]) / std::abs(want[j]));
      else
        ASSERT_LE(std::abs(got[j] - want[j]), 2.98023224e-08f);  // subnormal: half an ulp
    }
  }
  EXPECT_LE(max_rel, 1.0 / 2048);
  EXPECT_GT(max_rel, 0.0);
}

TEST(EmbeddingCache, GzipRoundTripAndMerge) {
  testing::TempDir dir;
  const fs::path part = dir.path() / "part.h5", merged = dir.path() / "merged.h5";
  const int n = 6000, dim = 96;
  EmbeddingCacheWriterOptions options;
  options.gzip_level = 4;
  EmbeddingCacheWriter writer(part, options);
  for (int i = 0; i < n; ++i)
    writer.add(kImageA, key_of(i), i, embedding_of(8, i, dim).data(), dim);
  writer.commit();
  EmbeddingCacheMergeOptions merge_options;
  merge_options.gzip_level = 1;
  EXPECT_EQ(merge_embedding_caches({part}, merged, merge_options).entries, n);
  for (const fs::path& path : {part, merged}) {
    EmbeddingCacheReader reader(path);
    for (int i = n - 1; i >= 0; i -= 7) {  // backwards: every lookup leaves the cached chunk
      std::vector<float> got;
      ASSERT_TRUE(reader.lookup(kImageA, key_of(i), &got));
      expect_same_floats(got, embedding_of(8, i, dim));
    }
  }
  EXPECT_THROW(EmbeddingCacheWriter(dir.path() / "x.h5", {false, 10}), std::invalid_argument);
}

TEST(EmbeddingCache, SeveralModelsAndTablesInOneFile) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "part.h5";
  const std::vector<std::pair<CacheTable, int>> tables = {
      {kImageA, 512}, {kTextA, 512}, {kImageB, 768}, {kTextLong, 768}};
  {
    EmbeddingCacheWriter writer(path);
    for (int i = 0; i < 300; ++i)
      for (size_t t = 0; t < tables.size(); ++t) {
        const int dim = tables[t].second;
        // The same key in every table, with a different embedding per table.
        writer.add(tables[t].first, key_of(i), i, embedding_of(10 + t, i, dim).data(), dim);
      }
    writer.commit();
  }
  EmbeddingCacheReader reader(path);
  std::vector<CacheTable> want;
  for (const auto& t : tables) want.push_back(t.first);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(reader.tables(), want);
  for (size_t t = 0; t < tables.size(); ++t) {
    EXPECT_EQ(reader.dim(tables[t].first), tables[t].second);
    EXPECT_EQ(reader.size(tables[t].first), 300);
    for (int i = 0; i < 300; i += 37) {
      std::vector<float> got;
      ASSERT_TRUE(reader.lookup(tables[t].first, key_of(i), &got));
      expect_same_floats(got, embedding_of(10 + t, i, tables[t].second));
    }
  }
  EXPECT_EQ(reader.dim(CacheTable{"modelA", "image", "openai224"}), 0);
}

TEST(EmbeddingCache, DuplicateKeysAreStoredOnceFirstWins) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "part.h5";
  EmbeddingCacheWriter writer(path);
  const auto first = embedding_of(3, 0, 8), second = embedding_of(3, 1, 8);
  EXPECT_TRUE(writer.add(kImageA, key_of(5), 10, first.data(), 8));
  EXPECT_FALSE(writer.add(kImageA, key_of(5), 11, second.data(), 8));
  EXPECT_TRUE(writer.add(kTextA, key_of(5), 11, second.data(), 8));  // other table: stored
  EXPECT_EQ(writer.size(), 2);
  writer.commit();
  EmbeddingCacheReader reader(path);
  EXPECT_EQ(reader.size(kImageA), 1);
  std::vector<float> got;
  ASSERT_TRUE(reader.lookup(kImageA, key_of(5), &got));
  expect_same_floats(got, first);
}

TEST(EmbeddingCache, WriterRejectsBadInput) {
  testing::TempDir dir;
  EmbeddingCacheWriter writer(dir.path() / "part.h5");
  const auto v = embedding_of(0, 0, 16);
  EXPECT_THROW(writer.add({"m", "audio", "p"}, key_of(0), 0, v.data(), 16), std::invalid_argument);
  EXPECT_THROW(writer.add({"", "image", "p"}, key_of(0), 0, v.data(), 16), std::invalid_argument);
  EXPECT_THROW(writer.add(kImageA, key_of(0), 0, v.data(), 0), std::invalid_argument);
  writer.add(kImageA, key_of(0), 0, v.data(), 16);
  EXPECT_THROW(writer.add(kImageA, key_of(1), 0, v.data(), 8), std::invalid_argument);
  writer.commit();
  EXPECT_THROW(writer.add(kImageA, key_of(2), 0, v.data(), 16), std::logic_error);

  const std::string message =
      error_of([&] { EmbeddingCacheWriter(dir.path() / "no" / "such" / "dir" / "part.h5"); });
  EXPECT_NE(message.find("no/such/dir/part.h5"), std::string::npos) << message;
}

TEST(EmbeddingCache, WriterDestroyedWithoutCommitLeavesNothing) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "part.h5";
  {
    EmbeddingCacheWriter writer(path);
    for (int i = 0; i < 5000; ++i)
      writer.add(kImageA, key_of(i), i, embedding_of(4, i, 32).data(), 32);
    EXPECT_TRUE(fs::exists(path.string() + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  // An existing committed file survives an abandoned rewrite, and a commit replaces it.
  {
    EmbeddingCacheWriter writer(path);
    writer.add(kImageA, key_of(1), 1, embedding_of(4, 1, 32).data(), 32);
    writer.commit();
  }
  {
    EmbeddingCacheWriter writer(path);
    writer.add(kImageA, key_of(2), 2, embedding_of(4, 2, 32).data(), 32);
  }
  EXPECT_EQ(EmbeddingCacheReader(path).size(kImageA), 1);
  EXPECT_TRUE(EmbeddingCacheReader(path).contains(kImageA, key_of(1)));
  {
    EmbeddingCacheWriter writer(path);
    writer.add(kImageA, key_of(3), 3, embedding_of(4, 3, 32).data(), 32);
    writer.commit();
  }
  EmbeddingCacheReader reader(path);
  EXPECT_FALSE(reader.contains(kImageA, key_of(1)));
  EXPECT_TRUE(reader.contains(kImageA, key_of(3)));
}

TEST(EmbeddingCache, EmptyCacheIsValid) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "empty.h5";
  EmbeddingCacheWriter(path).commit();
  EmbeddingCacheReader reader(path);
  EXPECT_TRUE(reader.tables().empty());
  std::vector<float> out;
  EXPECT_FALSE(reader.lookup(kImageA, key_of(0), &out));
}

// Parts as a run writes them: overlapping keys (the same image in several shards), tables that
// only some parts have, an empty part.
struct Entry {
  uint64_t row;
  std::vector<float> embedding;
};
using Expected =
    std::map<CacheTable, std::vector<std::pair<ContentKey, Entry>>>;  // first-wins order

Expected write_parts(const fs::path& dir, std::vector<fs::path>* parts, bool fp16 = false) {
  Expected expected;
  std::map<CacheTable, std::map<ContentKey, bool>> seen;
  auto add = [&](EmbeddingCacheWriter& w, const CacheTable& t, int item, uint64_t row, int dim,
                 int seed) {
    const auto v = embedding_of(seed, item, dim);
    w.add(t, key_of(item), row, v.data(), dim);
    if (!seen[t].emplace(key_of(item), true).second) return;
    std::vector<float> stored = v;
    if (fp16)
      for (float& f : stored) f = half_to_float(float_to_half(f));
    expected[t].push_back({key_of(item), {row, stored}});
  };
  EmbeddingCacheWriterOptions options;
  options.lossy_fp16 = fp16;
  for (int p = 0; p < 4; ++p) {
    const fs::path path = dir / ("shard-" + std::to_string(p) + ".h5");
    EmbeddingCacheWriter w(path, options);
    if (p != 2) {  // part 2 is empty
      for (int i = 0; i < 3000; ++i) {
        const int item = p * 2000 + i;  // items 2000..2999 are in parts 0 and 1, ...
        const uint64_t row = static_cast<uint64_t>(p) * 100000 + i;
        add(w, kImageA, item, row, 48, p);  // seed differs per part: first one must win
        if (item % 3 == 0) add(w, kTextA, item, row, 48, 100 + p);
      }
      if (p == 3)
        for (int i = 0; i < 100; ++i) add(w, kTextLong, i, 900000 + i, 20, 7);
    }
    w.commit();
    parts->push_back(path);
  }
  return expected;
}

void expect_cache_holds(const fs::path& path, const Expected& expected) {
  EmbeddingCacheReader reader(path);
  std::vector<CacheTable> tables;
  for (const auto& e : expected) tables.push_back(e.first);
  EXPECT_EQ(reader.tables(), tables);
  for (const auto& [table, entries] : expected) {
    EXPECT_EQ(reader.size(table), static_cast<int64_t>(entries.size())) << table.to_string();
    for (const auto& [key, entry] : entries) {
      std::vector<float> got;
      ASSERT_TRUE(reader.lookup(table, key, &got)) << table.to_string();
      expect_same_floats(got, entry.embedding);
    }
  }
}

TEST(EmbeddingCache, MergeIsTheFirstWinsUnion) {
  testing::TempDir dir;
  std::vector<fs::path> parts;
  const Expected expected = write_parts(dir.path(), &parts);
  const fs::path merged = dir.path() / "embeddings.h5";
  const auto stats = merge_embedding_caches(parts, merged);
  EXPECT_FALSE(fs::exists(merged.string() + ".tmp"));
  int64_t entries = 0;
  for (const auto& e : expected) entries += static_cast<int64_t>(e.second.size());
  EXPECT_EQ(stats.parts, 4);
  EXPECT_EQ(stats.tables, 3);
  EXPECT_EQ(stats.entries, entries);
  EXPECT_EQ(stats.duplicates, 1000 + 333);  // items 2000..2999, and the multiples of 3 among them
  expect_cache_holds(merged, expected);

  // Merging a merged file with a part again is idempotent on content (the output may be a part).
  merge_embedding_caches({merged, parts[3]}, merged);
  expect_cache_holds(merged, expected);

  // The reader over the parts themselves sees the same union (first file wins).
  EmbeddingCacheReader over_parts(parts);
  for (const auto& [table, list] : expected) {
    EXPECT_EQ(over_parts.size(table), static_cast<int64_t>(list.size()));
    std::vector<float> got;
    ASSERT_TRUE(over_parts.lookup(table, list.back().first, &got));
    expect_same_floats(got, list.back().second.embedding);
  }
}

TEST(EmbeddingCache, MergeKeepsFloat16) {
  testing::TempDir dir;
  std::vector<fs::path> parts;
  const Expected expected = write_parts(dir.path(), &parts, /*fp16=*/true);
  const fs::path merged = dir.path() / "embeddings.h5";
  merge_embedding_caches(parts, merged);
  expect_cache_holds(merged, expected);
  EXPECT_TRUE(EmbeddingCacheReader(merged).lossy(kImageA));
}

TEST(EmbeddingCache, MergeRefusesDisagreeingParts) {
  testing::TempDir dir;
  const fs::path a = dir.path() / "a.h5", b = dir.path() / "b.h5", c = dir.path() / "c.h5";
  const fs::path out = dir.path() / "out.h5";
  {
    EmbeddingCacheWriter w(a);
    w.add(kImageA, key_of(0), 0, embedding_of(0, 0, 16).data(), 16);
    w.commit();
  }
  {
    EmbeddingCacheWriter w(b);
    w.add(kImageA, key_of(1), 1, embedding_of(0, 1, 8).data(), 8);
    w.commit();
  }
  {
    EmbeddingCacheWriterOptions o;
    o.lossy_fp16 = true;
    EmbeddingCacheWriter w(c, o);
    w.add(kImageA, key_of(2), 2, embedding_of(0, 2, 16).data(), 16);
    w.commit();
  }
  std::string message = error_of([&] { merge_embedding_caches({a, b}, out); });
  EXPECT_NE(message.find("b.h5"), std::string::npos) << message;
  EXPECT_NE(message.find("modelA/image/hf224"), std::string::npos) << message;
  message = error_of([&] { merge_embedding_caches({a, c}, out); });
  EXPECT_NE(message.find("float16"), std::string::npos) << message;
  message = error_of([&] { merge_embedding_caches({a, dir.path() / "missing.h5"}, out); });
  EXPECT_NE(message.find("missing.h5"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".tmp"));
  // The reader refuses the dim conflict too.
  message = error_of([&] { EmbeddingCacheReader({a, b}); });
  EXPECT_NE(message.find("dim"), std::string::npos) << message;
}

// Opens `path` and reads everything in it; returns the error message ("" when none).
std::string error_reading_all(const fs::path& path, int items) {
  return error_of([&] {
    EmbeddingCacheReader reader(path);
    for (const auto& t : reader.tables()) {
      reader.size(t);
      std::vector<float> out;
      for (int i = 0; i < items; ++i) reader.lookup(t, key_of(i), &out);
    }
  });
}

TEST(EmbeddingCache, CorruptOrTruncatedFilesThrowClearErrors) {
  testing::TempDir dir;
  const fs::path good = dir.path() / "good.h5";
  {
    EmbeddingCacheWriter w(good);
    for (int i = 0; i < 3000; ++i)
      w.add(kImageA, key_of(i), i, embedding_of(5, i, 128).data(), 128);
    w.commit();
  }
  const std::string bytes = testing::read_file_bytes(good);
  const fs::path bad = dir.path() / "bad.h5";
  for (const std::string& content :
       {std::string(), std::string("not an hdf5 file at all"), bytes.substr(0, 100),
        bytes.substr(0, bytes.size() / 2), bytes.substr(0, bytes.size() - 1)}) {
    testing::write_file_bytes(bad, content);
    const std::string message = error_reading_all(bad, 3000);
    EXPECT_NE(message.find("bad.h5"), std::string::npos)
        << "size " << content.size() << ": " << message;
    EXPECT_NE(message.find("delete it"), std::string::npos) << message;
  }
  const std::string missing = error_of([&] { EmbeddingCacheReader(dir.path() / "nope.h5"); });
  EXPECT_NE(missing.find("nope.h5"), std::string::npos) << missing;
}

// Damaged bytes in a small file (the first KiB, all metadata, then ~1000 places spread over the
// rest): each single-byte change is either reported as an error (this format checksums its
// metadata) or harmless (raw embedding data, unused chunk space), never a crash.
TEST(EmbeddingCache, DamagedBytesNeverCrash) {
  testing::TempDir dir;
  const fs::path good = dir.path() / "good.h5";
  {
    EmbeddingCacheWriter w(good);
    for (int i = 0; i < 40; ++i) {
      w.add(kImageA, key_of(i), i, embedding_of(5, i, 4).data(), 4);
      w.add(kTextLong, key_of(i), i, embedding_of(6, i, 4).data(), 4);
    }
    w.commit();
  }
  const std::string bytes = testing::read_file_bytes(good);
  const fs::path bad = dir.path() / "bad.h5";
  int reported = 0, tried = 0;
  const size_t stride = std::max<size_t>(1, bytes.size() / 1000);
  for (size_t at = 0; at < bytes.size(); at += at < 1024 ? 1 : stride, ++tried) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x5a);
    testing::write_file_bytes(bad, damaged);
    const std::string message = error_reading_all(bad, 40);
    if (!message.empty()) {
      ++reported;
      ASSERT_NE(message.find("bad.h5"), std::string::npos) << "byte " << at << ": " << message;
    }
  }
  std::cout << reported << " of " << tried << " damaged copies reported, the rest harmless\n";
  EXPECT_GT(reported, 500) << tried << " tried, file of " << bytes.size() << " bytes";
}

TEST(EmbeddingCache, WritersOnSeveralThreads) {
  testing::TempDir dir;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      EmbeddingCacheWriter w(dir.path() / ("t" + std::to_string(t) + ".h5"));
      for (int i = 0; i < 2000; ++i)
        w.add(kImageA, key_of(t * 10000 + i), i, embedding_of(t, i, 64).data(), 64);
      w.commit();
    });
  for (auto& th : threads) th.join();
  std::vector<fs::path> parts;
  for (int t = 0; t < 4; ++t) parts.push_back(dir.path() / ("t" + std::to_string(t) + ".h5"));
  merge_embedding_caches(parts, dir.path() / "all.h5");
  EXPECT_EQ(EmbeddingCacheReader(dir.path() / "all.h5").size(kImageA), 8000);
}

// h5py (the user's tool) reads the merged file: layout, attributes and the exact numbers.
TEST(EmbeddingCache, H5pyReadsTheMergedFile) {
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py not available";
  testing::TempDir dir;
  std::vector<fs::path> parts;
  const Expected expected = write_parts(dir.path(), &parts);
  const fs::path merged = dir.path() / "embeddings.h5";
  merge_embedding_caches(parts, merged);

  const fs::path script = dir.path() / "dump.py", dump = dir.path() / "dump.txt";
  std::ofstream(script) << R"(import sys, h5py
f = h5py.File(sys.argv[1], "r")
out = open(sys.argv[2], "w")
def s(x):  # fixed-length string attributes come back as bytes (docs/FORMATS.md)
    return x.decode() if isinstance(x, bytes) else x
out.write("%s %d\n" % (s(f.attrs["format"]), f.attrs["version"]))
def visit(name, obj):
    if isinstance(obj, h5py.Group) and "embedding" in obj:
        a = obj.attrs
        k, r, e = obj["key"][()], obj["row"][()], obj["embedding"][()]
        assert k.dtype == "uint64" and k.shape == (len(k), 2) and r.dtype == "uint64"
        out.write("T %s %s %s %d %s %s %d\n" % (s(a["model_id"]), s(a["kind"]), s(a["pipeline"]),
                  a["dim"], s(a["dtype"]), e.dtype, len(k)))
        for i in range(len(k)):
            out.write("%016x%016x %d %s\n" % (k[i][0], k[i][1], r[i],
                      " ".join(float(x).hex() for x in e[i])))
f.visititems(visit)
)";
  const std::string command =
      "/usr/bin/python3 " + script.string() + " " + merged.string() + " " + dump.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  std::ifstream in(dump);
  std::string format;
  int version = 0;
  in >> format >> version;
  EXPECT_EQ(format, "clipshard-embeddings");
  EXPECT_EQ(version, 2);
  std::map<CacheTable, std::vector<std::pair<ContentKey, Entry>>> read;
  std::string tag;
  while (in >> tag) {
    ASSERT_EQ(tag, "T");
    CacheTable table;
    int dim;
    std::string dtype, numpy_dtype;
    size_t n;
    in >> table.model_id >> table.kind >> table.pipeline >> dim >> dtype >> numpy_dtype >> n;
    EXPECT_EQ(dtype, "float32");
    EXPECT_EQ(numpy_dtype, "float32");
    auto& entries = read[table];
    for (size_t i = 0; i < n; ++i) {
      std::string hex;
      Entry e;
      in >> hex >> e.row;
      e.embedding.resize(dim);
      for (float& f : e.embedding) {
        std::string h;
        in >> h;
        f = static_cast<float>(std::strtod(h.c_str(), nullptr));
      }
      entries.push_back({content_key_from_hex(hex), e});
    }
  }
  ASSERT_EQ(read.size(), expected.size());
  for (const auto& [table, first_wins] : expected) {
    const auto& got = read[table];
    // Version 2 stores a table sorted by key (the first part's entry wins a duplicate).
    auto entries = first_wins;
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    ASSERT_EQ(got.size(), entries.size()) << table.to_string();
    for (size_t i = 0; i < entries.size(); ++i) {  // the same entries in key order
      ASSERT_EQ(got[i].first, entries[i].first);
      ASSERT_EQ(got[i].second.row, entries[i].second.row);
      expect_same_floats(got[i].second.embedding, entries[i].second.embedding);
    }
  }
}

}  // namespace
}  // namespace clipshard
