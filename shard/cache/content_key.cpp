#include "shard/cache/content_key.h"

#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace clipshard {

namespace {

ContentKey from_xxh(XXH128_hash_t h) { return {h.high64, h.low64}; }

// The 16 canonical (big-endian) bytes of a key, the form combine() hashes.
void canonical_bytes(const ContentKey& key, unsigned char out[16]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH128_hash_t{key.lo, key.hi});
  std::memcpy(out, c.digest, 16);
}

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

}  // namespace

ContentKey content_key(const void* data, size_t n) {
  return from_xxh(XXH3_128bits(n ? data : "", n));
}

ContentKey content_key(std::string_view bytes) { return content_key(bytes.data(), bytes.size()); }

ContentKey content_key_seeded(const void* data, size_t n, uint64_t seed) {
  return from_xxh(XXH3_128bits_withSeed(n ? data : "", n, seed));
}

ContentKey content_key_of_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) {
    throw std::runtime_error("cannot open " + path.string() +
                             " to hash it: " + std::strerror(errno));
  }
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  if (!state || XXH3_128bits_reset(state.get()) != XXH_OK)
    throw std::runtime_error("xxhash: cannot allocate a hash state for " + path.string());
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const size_t got = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (got > 0) XXH3_128bits_update(state.get(), buffer.data(), got);
    if (got < buffer.size()) {
      if (std::ferror(file.get())) {
        throw std::runtime_error("read error while hashing " + path.string() + ": " +
                                 std::strerror(errno));
      }
      break;
    }
  }
  return from_xxh(XXH3_128bits_digest(state.get()));
}

ContentKey combine(const ContentKey& key, std::string_view salt) {
  std::string bytes(16 + salt.size(), '\0');
  canonical_bytes(key, reinterpret_cast<unsigned char*>(bytes.data()));
  std::memcpy(bytes.data() + 16, salt.data(), salt.size());
  return content_key(bytes.data(), bytes.size());
}

ContentKey combine(const ContentKey& key, const ContentKey& other) {
  unsigned char b[16];
  canonical_bytes(other, b);
  return combine(key, std::string_view(reinterpret_cast<const char*>(b), 16));
}

std::string to_hex(const ContentKey& key) {
  char out[33];
  std::snprintf(out, sizeof(out), "%016llx%016llx", static_cast<unsigned long long>(key.hi),
                static_cast<unsigned long long>(key.lo));
  return std::string(out, 32);
}

ContentKey content_key_from_hex(std::string_view hex) {
  if (hex.size() != 32)
    throw std::invalid_argument("content key must be 32 hex digits, got '" + std::string(hex) +
                                "'");
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      throw std::invalid_argument("content key must be 32 hex digits, got '" + std::string(hex) +
                                  "'");
    }
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(v);
  }
  return {parts[0], parts[1]};
}

}  // namespace clipshard
