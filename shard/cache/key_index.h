// A compact hash map ContentKey -> uint64 (open addressing, linear probing): 24 bytes a slot, at
// most 2/3 full, no allocation per key. Holds a writer's key set (one part, one shard: its
// duplicate check); readers and the merge use the sorted tables instead. Internal to shard/cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "shard/cache/content_key.h"

namespace clipshard {

class KeyIndex {
 public:
  // Value of an empty slot; not a storable value.
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  // The value stored for `key`, or nullptr.
  const uint64_t* find(const ContentKey& key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kEmpty) return nullptr;
      if (s.hi == key.hi && s.lo == key.lo) return &s.value;
    }
  }
  bool contains(const ContentKey& key) const { return find(key) != nullptr; }

  // Inserts key -> value unless the key is present (then keeps the old value and returns false).
  // `value` must not be kEmpty.
  bool insert(const ContentKey& key, uint64_t value) {
    if ((size_ + 1) * 3 > slots_.size() * 2) grow((size_ + 1) * 2);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value == kEmpty) {
        s = {key.hi, key.lo, value};
        ++size_;
        return true;
      }
      if (s.hi == key.hi && s.lo == key.lo) return false;
    }
  }

  // Makes room for `n` keys without rehashing.
  void reserve(size_t n) {
    if (n * 3 > slots_.size() * 2) grow(n);
  }
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t hi, lo, value;
  };

  size_t slot_of(const ContentKey& key) const { return ContentKeyHash()(key) & mask_; }

  void grow(size_t keys) {
    size_t capacity = 16;
    while (capacity * 2 < keys * 3) capacity *= 2;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{0, 0, kEmpty});
    mask_ = capacity - 1;
    size_ = 0;
    for (const Slot& s : old)
      if (s.value != kEmpty) insert({s.hi, s.lo}, s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace clipshard
