#include "shard/cache/content_key.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/test_paths.h"
#include "shard/cache/half_float.h"

namespace clipshard {
namespace {

// Reference values: `printf abc | xxhsum -H2` (XXH128, seed 0), also Python xxhash.xxh3_128.
TEST(ContentKey, KnownXxh3_128Values) {
  const ContentKey abc = content_key("abc", 3);
  EXPECT_EQ(abc.hi, 0x06b05ab6733a6185ull);
  EXPECT_EQ(abc.lo, 0x78af5f94892f3950ull);
  EXPECT_EQ(to_hex(abc), "06b05ab6733a618578af5f94892f3950");
  EXPECT_EQ(to_hex(content_key(nullptr, 0)), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(to_hex(content_key(std::string_view("a"))), "a96faf705af16834e6c632b61e964e1f");
}

TEST(ContentKey, HexRoundTripAndErrors) {
  const ContentKey k = content_key("some bytes", 10);
  EXPECT_EQ(content_key_from_hex(to_hex(k)), k);
  EXPECT_EQ(content_key_from_hex("06B05AB6733A618578AF5F94892F3950"), content_key("abc", 3));
  EXPECT_THROW(content_key_from_hex("06b05ab6"), std::invalid_argument);
  EXPECT_THROW(content_key_from_hex("g6b05ab6733a618578af5f94892f3950"), std::invalid_argument);
}

TEST(ContentKey, FileKeyIsStreamedHashOfBytes) {
  testing::TempDir dir;
  // Larger than the 1 MiB read block and not a multiple of it.
  std::string bytes(3 * (1 << 20) + 12345, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  const auto path = dir.path() / "blob.bin";
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
  EXPECT_EQ(content_key_of_file(path), content_key(bytes));
  const auto empty = dir.path() / "empty.bin";
  std::ofstream(empty, std::ios::binary).flush();
  EXPECT_EQ(content_key_of_file(empty), content_key(nullptr, 0));
  try {
    content_key_of_file(dir.path() / "missing.jpg");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jpg"), std::string::npos) << e.what();
  }
}

TEST(ContentKey, SeedAndCombineGiveDistinctStableKeys) {
  const ContentKey base = content_key("image bytes", 11);
  EXPECT_NE(content_key_seeded("image bytes", 11, 1), base);
  EXPECT_EQ(content_key_seeded("image bytes", 11, 0), base);
  const ContentKey a = combine(base, "hf224");
  EXPECT_EQ(a, combine(base, "hf224"));
  EXPECT_NE(a, combine(base, "openai224"));
  EXPECT_NE(combine(base, ""), base);
  EXPECT_NE(combine(base, a), combine(a, base));
}

TEST(ContentKey, WorksAsHashMapKey) {
  std::unordered_map<ContentKey, int, ContentKeyHash> map;
  std::unordered_set<ContentKey> set;  // std::hash specialisation
  for (int i = 0; i < 1000; ++i) {
    map[content_key(&i, sizeof(i))] = i;
    set.insert(ContentKey{0, static_cast<uint64_t>(i)});
  }
  EXPECT_EQ(map.size(), 1000u);
  EXPECT_EQ(set.size(), 1000u);
  const int probe = 417;
  EXPECT_EQ(map.at(content_key(&probe, sizeof(probe))), 417);
}

TEST(HalfFloat, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const bool nan = (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff);
    const float f = half_to_float(bits);
    if (nan) {
      EXPECT_TRUE(f != f);
      EXPECT_EQ(float_to_half(f) & 0x7e00, 0x7e00);  // stays a (quiet) NaN
    } else {
      ASSERT_EQ(float_to_half(f), bits) << "half 0x" << std::hex << h;
    }
  }
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0x0001), 5.9604644775390625e-08f);  // smallest subnormal 2^-24
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
}

TEST(HalfFloat, RoundsToNearestEven) {
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // midpoint: ties to even = inf
  EXPECT_EQ(float_to_half(1e10f), 0x7c00);
  EXPECT_EQ(float_to_half(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);        // tie, 1.0 is even
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);        // tie, rounds up to even
  EXPECT_EQ(float_to_half(2.98023223876953125e-08f), 0x0000);  // 2^-25: tie to zero
  EXPECT_EQ(float_to_half(2.9802326e-08f), 0x0001);            // just above 2^-25
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  // Every float between neighbouring halves goes to the nearer one (ties to the even one).
  uint32_t x = 1;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1664525u + 1013904223u;
    float f;
    uint32_t bits = x & 0xbfffffffu;  // |f| < 2 or so: covers subnormals through normals
    std::memcpy(&f, &bits, sizeof(f));
    if (std::abs(f) > 65504.0f || f != f) continue;
    const uint16_t h = float_to_half(f);
    const double got = half_to_float(h);
    const uint16_t up = static_cast<uint16_t>(h + 1), down = static_cast<uint16_t>(h - 1);
    for (uint16_t n : {up, down}) {
      if ((n & 0x7c00) == 0x7c00 || ((n ^ h) & 0x8000)) continue;  // inf/NaN or sign change
      const double other = half_to_float(n);
      const double d_got = std::abs(got - f), d_other = std::abs(other - f);
      ASSERT_TRUE(d_got < d_other || (d_got == d_other && (h & 1) == 0))
          << f << " -> 0x" << std::hex << h;
    }
  }
}

}  // namespace
}  // namespace clipshard
