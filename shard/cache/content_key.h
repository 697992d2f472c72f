// Content keys of the embedding cache: the 128-bit XXH3 hash of the bytes an embedding was computed
// from (an image file's bytes, a caption's token ids). Two inputs with the same key are treated as
// the same input, so a key must cover everything that changes the embedding besides the table
// (model, kind, pipeline: see cache_table.h); mix anything else in with combine().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace clipshard {

struct ContentKey {
  uint64_t hi = 0;  // high 64 bits of the XXH128 result
  uint64_t lo = 0;  // low 64 bits

  friend bool operator==(const ContentKey& a, const ContentKey& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  friend bool operator!=(const ContentKey& a, const ContentKey& b) { return !(a == b); }
  friend bool operator<(const ContentKey& a, const ContentKey& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  }
};

// XXH3-128 of `n` bytes at `data` (seed 0): the same value as `xxhsum -H2` / Python's
// xxhash.xxh3_128. `data` may be null when n == 0.
ContentKey content_key(const void* data, size_t n);
ContentKey content_key(std::string_view bytes);
// XXH3-128 with a 64-bit seed (XXH3_128bits_withSeed).
ContentKey content_key_seeded(const void* data, size_t n, uint64_t seed);

// XXH3-128 of a whole file, read in 1 MiB blocks (constant memory). Equals content_key() of the
// file's bytes. Throws std::runtime_error naming the file when it cannot be opened or read.
ContentKey content_key_of_file(const std::filesystem::path& path);

// A key derived from `key` and extra bytes (e.g. a preprocessing pipeline name): XXH3-128 of the
// key's 16 canonical bytes followed by `salt`. Order matters; combine(k, "") != k.
ContentKey combine(const ContentKey& key, std::string_view salt);
ContentKey combine(const ContentKey& key, const ContentKey& other);

// 32 lower-case hex digits, hi then lo (XXH128's canonical big-endian form, as xxhsum prints it).
std::string to_hex(const ContentKey& key);
// Inverse of to_hex (either case). Throws std::invalid_argument unless `hex` is 32 hex digits.
ContentKey content_key_from_hex(std::string_view hex);

// For std::unordered_map<ContentKey, V, ContentKeyHash>.
struct ContentKeyHash {
  size_t operator()(const ContentKey& key) const noexcept {
    // Keys are already uniform hashes; a multiply-xor keeps hand-made test keys spread too.
    uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull);
    x ^= x >> 32;
    return static_cast<size_t>(x);
  }
};

}  // namespace clipshard

namespace std {
template <>
struct hash<clipshard::ContentKey> : clipshard::ContentKeyHash {};
}  // namespace std
