// A port of the BICUBIC, 8-bit path of Pillow 9.4's ImagingResample. The floating-point part (the
// coefficients) repeats Pillow's expressions operation for operation, in double, so that the
// fixed-point coefficients come out identical; the passes are exact integer arithmetic, whose sum
// order therefore does not matter, which lets the AVX2 versions (picked at run time on x86-64)
// add 8 products at a time.
#include "models/image/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

// Pillow is compiled without fused multiply-add; contracting a * b + c into one FMA would change
// the rounding of the coefficients on a machine that has it.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace clipshard {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kBicubicSupport = 2.0;

// Pillow's bicubic_filter with a = -0.5, written as its macro expands.
double bicubic_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
  return 0.0;
}

inline uint8_t clip8(int32_t value) {
  const int32_t v = value >> kPrecisionBits;  // arithmetic shift, as in Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// The resampling taps of a run of output positions along one axis. Each position's taps are
// zero-padded to a multiple of kLanes so that the passes can run whole blocks (zero taps add 0).
constexpr int kLanes = 8;

struct AxisCoefficients {
  int stride = 0;             // ksize rounded up to kLanes
  std::vector<int> first;     // first input index used by each output position
  std::vector<int> count;     // number of taps (Pillow's xmax after "xmax -= xmin")
  std::vector<int32_t> taps;  // `stride` fixed-point coefficients per output position
  std::vector<double> weights;
};

// precompute_coeffs + normalize_coeffs_8bpc for outputs [first_out, first_out + n_out) of an axis
// resized from in_size to out_size (box = 0..in_size, passed as floats as Image.resize does).
void compute_axis(int in_size, int64_t out_size, int64_t first_out, int n_out,
                  AxisCoefficients* axis) {
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int stride = (ksize + kLanes - 1) / kLanes * kLanes;
  axis->stride = stride;
  axis->first.resize(n_out);
  axis->count.resize(n_out);
  axis->taps.assign(static_cast<size_t>(n_out) * stride, 0);
  axis->weights.resize(ksize);
  double* k = axis->weights.data();
  for (int i = 0; i < n_out; ++i) {
    const int64_t xx = first_out + i;
    const double center = in0 + (static_cast<double>(xx) + 0.5) * scale;
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    // Pillow reserves ksize slots per position; the rounding above can never ask for more.
    if (xmax > ksize) xmax = ksize;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    int32_t* fixed = &axis->taps[static_cast<size_t>(i) * stride];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      fixed[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                       : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    axis->first[i] = xmin;
    axis->count[i] = xmax < 0 ? 0 : xmax;
  }
}

struct Scratch {
  AxisCoefficients horizontal;
  AxisCoefficients vertical;
  std::vector<uint8_t> rgbx;        // one source row as RGBx, for the AVX2 horizontal pass
  std::vector<int32_t> pair_taps;   // horizontal taps in pairs, for the AVX2 horizontal pass
  std::vector<uint8_t> temp;    // horizontal pass output: the source rows the window needs
  std::vector<uint8_t> row;  // one padded output row of the vertical pass
};

// One source row -> the window's columns, Pillow's loop as it is (the baseline path).
void horizontal_row_generic(const uint8_t* src, const AxisCoefficients& axis, int width,
                            uint8_t* dst) {
  for (int j = 0; j < width; ++j, dst += 3) {
    const uint8_t* in = src + size_t{3} * axis.first[j];
    const int32_t* k = &axis.taps[static_cast<size_t>(j) * axis.stride];
    const int n = axis.count[j];
    int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
    for (int x = 0; x < n; ++x, in += 3) {
      s0 += in[0] * k[x];
      s1 += in[1] * k[x];
      s2 += in[2] * k[x];
    }
    dst[0] = clip8(s0);
    dst[1] = clip8(s1);
    dst[2] = clip8(s2);
  }
}

// One output row of the vertical pass: dst[b] = clip8(sum_y in[y * stride + b] * k[y]) for b < n
// (n a multiple of kLanes; in and dst are padded to it). Each block of kLanes values stays in
// registers across the taps.
void vertical_row_generic(const uint8_t* in, size_t stride, const int32_t* k, int count, size_t n,
                          uint8_t* dst) {
  for (size_t b = 0; b < n; b += kLanes) {
    int32_t sum[kLanes];
    for (int l = 0; l < kLanes; ++l) sum[l] = 1 << (kPrecisionBits - 1);
    for (int y = 0; y < count; ++y) {
      const uint8_t* row = in + y * stride + b;
      for (int l = 0; l < kLanes; ++l) sum[l] += row[l] * k[y];
    }
    for (int l = 0; l < kLanes; ++l) dst[b + l] = clip8(sum[l]);
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) void vertical_row_avx2(const uint8_t* in, size_t stride,
                                                       const int32_t* k, int count, size_t n,
                                                       uint8_t* dst) {
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  for (size_t b = 0; b < n; b += kLanes) {
    __m256i sum = half;
    for (int y = 0; y < count; ++y) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + y * stride + b));
      sum = _mm256_add_epi32(
          sum, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_set1_epi32(k[y])));
    }
    // >> 22 then saturate to 0..255: exactly clip8 (packs keeps -640..639, packus clamps).
    sum = _mm256_srai_epi32(sum, kPrecisionBits);
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(sum),
                                          _mm256_extracti128_si256(sum, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + b), _mm_packus_epi16(words, words));
  }
}

// The source row widened to RGBx (4 bytes a pixel, 2 pixels of zero padding) and, per output
// column, its taps in pairs, each pair as (k0, k0, k0, k0, k1, k1, k1, k1): one 8-lane
// multiply-add then covers two taps of all three channels.
void expand_pair_taps(const AxisCoefficients& axis, int width, std::vector<int32_t>* pairs) {
  const int pair_stride = axis.stride / 2 * 8;
  pairs->assign(static_cast<size_t>(width) * pair_stride, 0);
  for (int j = 0; j < width; ++j) {
    const int32_t* k = &axis.taps[static_cast<size_t>(j) * axis.stride];
    int32_t* out = pairs->data() + static_cast<size_t>(j) * pair_stride;
    for (int x = 0; x < axis.count[j]; ++x) {
      for (int c = 0; c < 4; ++c) out[4 * x + c] = k[x];
    }
  }
}

__attribute__((target("avx2"))) void horizontal_row_avx2(const uint8_t* src, int src_width,
                                                         const AxisCoefficients& axis,
                                                         const int32_t* pairs, int width,
                                                         uint8_t* rgbx, uint8_t* dst) {
  for (int x = 0; x < src_width; ++x) {
    rgbx[4 * x] = src[3 * x];
    rgbx[4 * x + 1] = src[3 * x + 1];
    rgbx[4 * x + 2] = src[3 * x + 2];
    rgbx[4 * x + 3] = 0;
  }
  const int pair_stride = axis.stride / 2 * 8;
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int j = 0; j < width; ++j) {
    const uint8_t* in = rgbx + 4 * axis.first[j];
    const int32_t* k = pairs + static_cast<size_t>(j) * pair_stride;
    const int n_pairs = (axis.count[j] + 1) / 2;
    __m256i sum = _mm256_setzero_si256();
    for (int p = 0; p < n_pairs; ++p) {
      const __m256i px =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 8 * p)));
      const __m256i kk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 8 * p));
      sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(px, kk));
    }
    __m128i total = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(sum),
                                                _mm256_extracti128_si256(sum, 1)),
                                  half);
    total = _mm_srai_epi32(total, kPrecisionBits);
    const __m128i words = _mm_packs_epi32(total, total);
    const uint32_t rgb = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(words, words)));
    dst[3 * j] = static_cast<uint8_t>(rgb);
    dst[3 * j + 1] = static_cast<uint8_t>(rgb >> 8);
    dst[3 * j + 2] = static_cast<uint8_t>(rgb >> 16);
  }
}

bool have_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}

void vertical_row(const uint8_t* in, size_t stride, const int32_t* k, int count, size_t n,
                  uint8_t* dst) {
  if (have_avx2()) {
    vertical_row_avx2(in, stride, k, count, n, dst);
  } else {
    vertical_row_generic(in, stride, k, count, n, dst);
  }
}
#else
bool have_avx2() { return false; }
void expand_pair_taps(const AxisCoefficients&, int, std::vector<int32_t>*) {}
void horizontal_row_avx2(const uint8_t*, int, const AxisCoefficients&, const int32_t*, int,
                         uint8_t*, uint8_t*) {}
void vertical_row(const uint8_t* in, size_t stride, const int32_t* k, int count, size_t n,
                  uint8_t* dst) {
  vertical_row_generic(in, stride, k, count, n, dst);
}
#endif

}  // namespace

void pil_resize_bicubic_window(const RgbImage& src, int64_t out_width, int64_t out_height,
                               int left, int top, int width, int height, RgbImage* out) {
  out->width = out->height = 0;
  out->pixels.clear();
  if (src.width < 1 || src.height < 1 ||
      src.pixels.size() < size_t{3} * src.width * static_cast<size_t>(src.height) ||
      width < 1 || height < 1 || left < 0 || top < 0 || left + int64_t{width} > out_width ||
      top + int64_t{height} > out_height) {
    return;
  }
  thread_local Scratch scratch;
  const size_t src_stride = size_t{3} * src.width;
  const size_t row_bytes = size_t{3} * width;
  const bool need_horizontal = out_width != src.width;
  const bool need_vertical = out_height != src.height;

  // Vertical taps first: they say which source rows the horizontal pass must produce.
  int row_first = top, row_last = top + height;  // source rows, when there is no vertical pass
  AxisCoefficients& vertical = scratch.vertical;
  if (need_vertical) {
    compute_axis(src.height, out_height, top, height, &vertical);
    row_first = vertical.first[0];
    row_last = vertical.first[height - 1] + vertical.count[height - 1];
    for (int i = 0; i < height; ++i) {
      row_first = std::min(row_first, vertical.first[i]);
      row_last = std::max(row_last, vertical.first[i] + vertical.count[i]);
    }
  }
  const int rows = std::max(row_last - row_first, 0);

  // Horizontal pass (or the window's columns as they are) for rows [row_first, row_last).
  // Rows of temp are padded to whole kLanes blocks for vertical_row.
  const size_t padded_row = (row_bytes + kLanes - 1) / kLanes * kLanes;
  std::vector<uint8_t>& temp = scratch.temp;
  temp.resize(padded_row * rows + padded_row);
  if (need_horizontal) {
    AxisCoefficients& horizontal = scratch.horizontal;
    compute_axis(src.width, out_width, left, width, &horizontal);
    if (have_avx2()) {
      expand_pair_taps(horizontal, width, &scratch.pair_taps);
      scratch.rgbx.assign(size_t{4} * (src.width + 2), 0);
      for (int r = 0; r < rows; ++r) {
        horizontal_row_avx2(src.pixels.data() + (row_first + r) * src_stride, src.width,
                            horizontal, scratch.pair_taps.data(), width, scratch.rgbx.data(),
                            temp.data() + r * padded_row);
      }
    } else {
      for (int r = 0; r < rows; ++r) {
        horizontal_row_generic(src.pixels.data() + (row_first + r) * src_stride, horizontal,
                               width, temp.data() + r * padded_row);
      }
    }
  } else {
    for (int r = 0; r < rows; ++r) {
      std::memcpy(temp.data() + r * padded_row,
                  src.pixels.data() + (row_first + r) * src_stride + size_t{3} * left, row_bytes);
    }
  }

  out->width = width;
  out->height = height;
  out->pixels.resize(row_bytes * height);
  if (!need_vertical) {
    for (int r = 0; r < height; ++r) {
      std::memcpy(out->pixels.data() + r * row_bytes, temp.data() + r * padded_row, row_bytes);
    }
    return;
  }
  std::vector<uint8_t>& row = scratch.row;
  row.resize(padded_row);
  for (int i = 0; i < height; ++i) {
    vertical_row(temp.data() + (vertical.first[i] - row_first) * padded_row, padded_row,
                 &vertical.taps[static_cast<size_t>(i) * vertical.stride], vertical.count[i],
                 padded_row, row.data());
    std::memcpy(out->pixels.data() + i * row_bytes, row.data(), row_bytes);
  }
}

RgbImage pil_resize_bicubic(const RgbImage& src, int out_width, int out_height) {
  RgbImage out;
  if (out_width == src.width && out_height == src.height) {
    if (src.width > 0 && src.height > 0) out = src;
    return out;
  }
  pil_resize_bicubic_window(src, out_width, out_height, 0, 0, out_width, out_height, &out);
  return out;
}

}  // namespace clipshard
