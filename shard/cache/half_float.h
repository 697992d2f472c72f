// IEEE 754 binary16 <-> binary32 conversion (the lossy_fp16 cache stores embeddings as half).
#pragma once

#include <cstddef>
#include <cstdint>

namespace clipshard {

// Rounds to the nearest half, ties to even (as numpy's float16 and torch's .half() do); values
// beyond the half range become +-inf, NaN stays NaN (quiet).
uint16_t float_to_half(float value);
// Exact (every half is a float).
float half_to_float(uint16_t bits);

void floats_to_halves(const float* in, uint16_t* out, size_t n);
void halves_to_floats(const uint16_t* in, float* out, size_t n);

}  // namespace clipshard
