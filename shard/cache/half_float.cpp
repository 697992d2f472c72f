#include "shard/cache/half_float.h"

#include <cstring>

namespace clipshard {

namespace {

// Rounds the integer `value >> shift` to nearest, ties to even (shift >= 1).
uint32_t shift_round_even(uint32_t value, int shift) {
  const uint32_t q = value >> shift;
  const uint32_t rem = value & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

}  // namespace

uint16_t float_to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  const uint32_t exp = abs >> 23;  // biased float exponent
  const uint32_t mant = abs & 0x7fffffu;
  if (exp == 0xff) {  // inf, NaN (keep the top payload bits, force quiet)
    return sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u);
  }
  if (exp >= 113) {  // half normal range or overflow: half exponent = exp - 112
    // Rounding may carry into the exponent (correct: next binade) and up to 0x7c00 (= inf).
    const uint32_t h = shift_round_even(((exp - 112) << 23) | mant, 13);
    return sign | static_cast<uint16_t>(h >= 0x7c00u ? 0x7c00u : h);
  }
  if (exp < 102) return sign;  // below half the smallest subnormal (2^-25): rounds to zero
  // Half subnormal, in units of 2^-24: the float is (mant | 2^23) * 2^(exp - 150).
  return sign | static_cast<uint16_t>(shift_round_even(mant | 0x800000u, 126 - exp));
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
  uint32_t x;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    x = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    x = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

void floats_to_halves(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

void halves_to_floats(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = half_to_float(in[i]);
}

}  // namespace clipshard
