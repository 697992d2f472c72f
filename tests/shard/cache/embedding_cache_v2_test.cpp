// Format version 2 of the embedding cache: sorted tables searched in place through their fence
// (lookups across many key blocks, misses before, between and after the keys, batched lookups),
// merges of more parts than are opened at once, table descriptions, and the clear errors for
// files of another tool, an older and a future version. Also runs the h5py example of
// docs/FORMATS.md against a cache written here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/error_of.h"
#include "common/test_files.h"
#include "common/test_paths.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/embedding_cache_writer.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

const CacheTable kImage{"modelA", "image", "hf224"};
const CacheTable kText{"modelA", "text", "hf77"};

ContentKey key_of(int i) { return content_key(&i, sizeof(i)); }

std::vector<float> embedding_of(int seed, int item, int dim) {
  std::vector<float> v(dim);
  for (int d = 0; d < dim; ++d) v[d] = static_cast<float>(seed * 1000 + item % 997 + d) / 7.0f;
  return v;
}

using testing::error_of;

bool has_h5py() { return std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0; }

// A cache at `path` with one table (kImage) of items 0..keys-1, each embedding_of(1, item, dim),
// committed.
void write_image_table(const fs::path& path, int keys, int dim) {
  EmbeddingCacheWriter w(path);
  for (int i = 0; i < keys; ++i) w.add(kImage, key_of(i), i, embedding_of(1, i, dim).data(), dim);
  w.commit();
}

// The description a run writes for a Hugging Face model directory (fingerprint "modelA",
// normalized embeddings); the fields the tests vary are the arguments.
TableDescription hf_description(const std::string& name, const std::string& path,
                                const std::string& precision) {
  TableDescription d;
  d.model_name = name;
  d.model_path = path;
  d.model_format = "huggingface-dir";
  d.fingerprint = "modelA";
  d.precision = precision;
  d.normalized = 1;
  return d;
}

// Writes `source` to <dir>/<name> and runs it with /usr/bin/python3 and `args`; fails with the
// command line unless it exits 0.
::testing::AssertionResult run_python(const fs::path& dir, const std::string& name,
                                      const std::string& source,
                                      const std::vector<fs::path>& args) {
  const fs::path script = dir / name;
  std::ofstream(script) << source;
  std::string command = "/usr/bin/python3 " + script.string();
  for (const fs::path& a : args) command += " " + a.string();
  if (std::system(command.c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "failed: " << command;
}

TEST(EmbeddingCacheV2, LookupsAcrossManyKeyBlocks) {
  testing::TempDir dir;
  const fs::path path = dir.path() / "cache.h5";
  constexpr int kKeys = 5000;  // 5 blocks of 1024 keys
  write_image_table(path, kKeys, 4);
  EmbeddingCacheReader reader(path);
  EXPECT_EQ(reader.size(kImage), kKeys);
  std::vector<float> got;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(reader.lookup(kImage, key_of(i), &got)) << i;
    ASSERT_EQ(got, embedding_of(1, i, 4)) << i;
  }
  for (int i = kKeys; i < kKeys + 2000; ++i) EXPECT_FALSE(reader.contains(kImage, key_of(i))) << i;
  EXPECT_FALSE(reader.contains(kImage, ContentKey{0, 0}));          // before every key
  EXPECT_FALSE(reader.contains(kImage, ContentKey{~0ull, ~0ull}));  // after every key
  EXPECT_FALSE(reader.contains(kText, key_of(1)));                  // no such table

  // A batch (hits and misses mixed, unsorted, a key twice) gives what single lookups give.
  std::vector<ContentKey> keys;
  for (int i = 0; i < 3000; ++i) keys.push_back(key_of((i * 7919) % (kKeys + 1000)));
  keys.push_back(keys.front());
  std::vector<float> out(keys.size() * 4, -1.0f);
  std::unique_ptr<bool[]> found(new bool[keys.size()]);
  const int64_t hits =
      reader.lookup_batch(kImage, keys.data(), keys.size(), out.data(), 4, found.get());
  int64_t expected_hits = 0;
  for (size_t k = 0; k < keys.size(); ++k) {
    const bool hit = reader.lookup(kImage, keys[k], &got);
    ASSERT_EQ(found[k], hit) << k;
    if (!hit) continue;
    ++expected_hits;
    EXPECT_EQ(std::vector<float>(out.begin() + 4 * k, out.begin() + 4 * (k + 1)), got) << k;
  }
  EXPECT_EQ(hits, expected_hits);
  EXPECT_GT(hits, 0);
  EXPECT_LT(hits, static_cast<int64_t>(keys.size()));
  EXPECT_THROW(reader.lookup_batch(kImage, keys.data(), 1, out.data(), 3, found.get()),
               std::invalid_argument);
}

TEST(EmbeddingCacheV2, MergeOfMorePartsThanOpenAtOnceKeepsFirstWins) {
  testing::TempDir dir;
  std::vector<fs::path> parts;
  std::map<int, std::pair<uint64_t, std::vector<float>>> expected;  // item -> first (row, emb)
  for (int p = 0; p < 300; ++p) {  // more than the merge opens at once (128): merged in groups
    parts.push_back(dir.path() / ("part-" + std::to_string(p) + ".h5"));
    EmbeddingCacheWriter w(parts.back());
    for (int i = p; i < p + 3; ++i) {  // item i is in parts i-2, i-1 and i
      const auto e = embedding_of(p, i, 3);
      w.add(kImage, key_of(i), static_cast<uint64_t>(p * 10 + i), e.data(), 3);
      expected.emplace(i, std::make_pair(static_cast<uint64_t>(p * 10 + i), e));
    }
    w.commit();
  }
  const fs::path out = dir.path() / "merged.h5";
  const auto stats = merge_embedding_caches(parts, out);
  EXPECT_EQ(stats.parts, 300);
  EXPECT_EQ(stats.entries, 302);
  EXPECT_EQ(stats.duplicates, 900 - 302);
  EmbeddingCacheReader reader(out);
  EXPECT_EQ(reader.size(kImage), 302);
  std::vector<float> got;
  for (const auto& [item, entry] : expected) {
    ASSERT_TRUE(reader.lookup(kImage, key_of(item), &got)) << item;
    EXPECT_EQ(got, entry.second) << item;  // the earliest part's embedding
  }
  // No temporary file is left beside the output.
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();

  // A reader over the parts themselves: the same union, counted by a walk over their keys.
  EmbeddingCacheReader over_parts(std::vector<fs::path>(parts.begin(), parts.begin() + 10));
  EXPECT_EQ(over_parts.size(kImage), 12);
}

TEST(EmbeddingCacheV2, DescriptionsAreKeptByTheMerge) {
  testing::TempDir dir;
  const TableDescription d =
      hf_description("openai/clip-vit-base-patch32", "/models/clip/model.safetensors", "fp16");
  TableDescription other = d;
  other.model_path = "/elsewhere/model.safetensors";
  const fs::path a = dir.path() / "a.h5", b = dir.path() / "b.h5", out = dir.path() / "out.h5";
  {
    EmbeddingCacheWriter w(a);
    w.describe(kImage, d);  // before the first add
    w.add(kImage, key_of(1), 1, embedding_of(0, 1, 2).data(), 2);
    w.add(kText, key_of(1), 1, embedding_of(0, 1, 2).data(), 2);  // never described
    w.commit();
  }
  {
    EmbeddingCacheWriter w(b);
    w.add(kImage, key_of(2), 2, embedding_of(0, 2, 2).data(), 2);
    w.describe(kImage, other);  // after it
    w.commit();
  }
  EXPECT_EQ(EmbeddingCacheReader(b).description(kImage), other);
  merge_embedding_caches({a, b}, out);
  EmbeddingCacheReader reader(out);
  EXPECT_EQ(reader.description(kImage), d);  // the first input's
  const TableDescription none = reader.description(kText);
  EXPECT_EQ(none, TableDescription{});
  EXPECT_EQ(none.normalized, -1);
  EXPECT_EQ(reader.description(CacheTable{"x", "image", "y"}), TableDescription{});
}

// Files written by h5py: another tool's HDF5 file, a clipshard cache of an older and of a future
// version. Each is refused with a message saying which.
TEST(EmbeddingCacheV2, OtherToolsAndOtherVersionsAreRefusedClearly) {
  if (!has_h5py()) GTEST_SKIP() << "/usr/bin/python3 with h5py not available";
  testing::TempDir dir;
  ASSERT_TRUE(run_python(dir.path(), "make.py", R"(import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/other.h5", "w") as f:          # another tool: no clipshard attributes
    f["data"] = np.zeros((3, 4), dtype=np.float32)
with h5py.File(d + "/named.h5", "w") as f:          # another tool's format name
    f.attrs["format"] = np.bytes_("anndata")
    f.attrs["version"] = np.int64(2)
for v in (1, 3):                                     # an older and a future clipshard version
    with h5py.File(d + "/v%d.h5" % v, "w") as f:
        f.attrs["format"] = np.bytes_("clipshard-embeddings")
        f.attrs["version"] = np.int64(v)
        f.create_group("models")
)",
                         {dir.path()}));

  const std::string other = error_of([&] { EmbeddingCacheReader r(dir.path() / "other.h5"); });
  EXPECT_NE(other.find("other.h5"), std::string::npos) << other;
  EXPECT_NE(other.find("attribute 'format' missing"), std::string::npos) << other;
  EXPECT_NE(other.find("written by another tool"), std::string::npos) << other;
  const std::string named = error_of([&] { EmbeddingCacheReader r(dir.path() / "named.h5"); });
  EXPECT_NE(named.find("format is 'anndata'"), std::string::npos) << named;
  for (int v : {1, 3}) {
    const fs::path file = dir.path() / ("v" + std::to_string(v) + ".h5");
    const std::string e = error_of([&] { EmbeddingCacheReader r(file); });
    EXPECT_NE(e.find(file.string()), std::string::npos) << e;
    EXPECT_NE(e.find("format version " + std::to_string(v) + "; this clipshard reads version 2"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("delete the file"), std::string::npos) << e;
    // The merge refuses it the same way, and leaves its output alone.
    const std::string m = error_of([&] { merge_embedding_caches({file}, dir.path() / "out.h5"); });
    EXPECT_NE(m.find("format version " + std::to_string(v)), std::string::npos) << m;
    EXPECT_FALSE(fs::exists(dir.path() / "out.h5"));
  }
}

// A table whose keys are out of order (edited by another tool) is reported, not searched wrongly.
TEST(EmbeddingCacheV2, UnsortedKeysAreReported) {
  if (!has_h5py()) GTEST_SKIP() << "/usr/bin/python3 with h5py not available";
  testing::TempDir dir;
  const fs::path swapped = dir.path() / "swapped.h5", fenced = dir.path() / "fenced.h5";
  for (const fs::path& p : {swapped, fenced}) write_image_table(p, 3000, 2);
  ASSERT_TRUE(run_python(dir.path(), "edit.py", R"(import sys, h5py
def table(f):
    found = []
    f.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Group) and "key" in o else None)
    return found[0]
with h5py.File(sys.argv[1], "r+") as f:   # two keys of the second block swapped
    k = table(f)["key"]
    a, b = k[1500], k[1501]
    k[1500], k[1501] = b, a
with h5py.File(sys.argv[2], "r+") as f:   # a fence key that is not its block's first key
    fence = table(f)["fence"]
    fence[1] = table(f)["key"][1030]
)",
                         {swapped, fenced}));

  EmbeddingCacheReader reader(swapped);
  const std::string lookup = error_of([&] {
    for (int i = 0; i < 3000; ++i) reader.contains(kImage, key_of(i));
  });
  EXPECT_NE(lookup.find("keys not sorted"), std::string::npos) << lookup;
  EXPECT_NE(lookup.find("swapped.h5"), std::string::npos) << lookup;
  const std::string merge =
      error_of([&] { merge_embedding_caches({swapped}, dir.path() / "out.h5"); });
  EXPECT_NE(merge.find("keys not sorted"), std::string::npos) << merge;
  EXPECT_FALSE(fs::exists(dir.path() / "out.h5"));

  EmbeddingCacheReader fence_reader(fenced);
  const std::string fence = error_of([&] {
    for (int i = 0; i < 3000; ++i) fence_reader.contains(kImage, key_of(i));
  });
  EXPECT_NE(fence.find("fenced.h5"), std::string::npos) << fence;
  EXPECT_TRUE(fence.find("fence") != std::string::npos) << fence;
}

// The "Reading with h5py" block of docs/FORMATS.md, run as a reader would paste it.
TEST(EmbeddingCacheV2, TheDocumentedH5pyExampleRuns) {
  if (!has_h5py()) GTEST_SKIP() << "/usr/bin/python3 with h5py not available";
  const std::string doc =
      testing::read_file_bytes(fs::path(CLIPSHARD_SOURCE_DIR) / "docs/FORMATS.md");
  const size_t marker = doc.find("<!-- h5py-example");
  ASSERT_NE(marker, std::string::npos);
  const size_t begin = doc.find("```python\n", marker);
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("\n```", begin + 10);
  ASSERT_NE(end, std::string::npos);
  testing::TempDir dir;
  const fs::path script = dir.path() / "example.py", cache = dir.path() / "embeddings.h5",
                 out = dir.path() / "out.txt";
  std::ofstream(script) << doc.substr(begin + 10, end - begin - 10) << "\n";
  const TableDescription d = hf_description("tiny", "/m/model.safetensors", "fp32");
  {
    EmbeddingCacheWriter w(cache);
    w.describe(kImage, d);
    w.describe(kText, d);
    for (int i = 0; i < 2500; ++i) {
      w.add(kImage, key_of(i), i, embedding_of(2, i, 4).data(), 4);
      if (i < 10) w.add(kText, key_of(i), i, embedding_of(3, i, 4).data(), 4);
    }
    w.commit();
  }
  const std::string command =
      "/usr/bin/python3 " + script.string() + " " + cache.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(command.c_str());
  const std::string printed = testing::read_file_bytes(out);
  ASSERT_EQ(rc, 0) << printed;
  EXPECT_NE(printed.find("modelA/image/hf224: 2500 x float32[4], tiny at fp32 (huggingface-dir, "
                         "/m/model.safetensors, normalized=1)"),
            std::string::npos)
      << printed;
  EXPECT_NE(printed.find("modelA/text/hf77: 10 x float32[4]"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("not in the table"), std::string::npos) << printed;
  EXPECT_NE(printed.find(": row "), std::string::npos) << printed;
}

}  // namespace
}  // namespace clipshard
