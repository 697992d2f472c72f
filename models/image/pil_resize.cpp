// A port of the BICUBIC, 8-bit path of Pillow 9.4's ImagingResample. The floating-point part (the
// coefficients) repeats Pillow's expressions operation for operation, in double, so that the
// fixed-point coefficients come out identical; the passes are exact integer arithmetic, whose sum
// order therefore does not matter (the vertical pass accumulates a row at a time so that it
// vectorises).
#include "models/image/pil_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

// The resampling taps of a run of output positions along one axis.
struct AxisCoefficients {
  int ksize = 0;
  std::vector<int> first;     // first input index used by each output position
  std::vector<int> count;     // number of taps (Pillow's xmax after "xmax -= xmin")
  std::vector<int32_t> taps;  // ksize fixed-point coefficients per output position
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
  axis->ksize = ksize;
  axis->first.resize(n_out);
  axis->count.resize(n_out);
  axis->taps.assign(static_cast<size_t>(n_out) * ksize, 0);
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
    int32_t* fixed = &axis->taps[static_cast<size_t>(i) * ksize];
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
  std::vector<uint8_t> temp;  // horizontal pass output: the source rows the window needs
  std::vector<int32_t> accumulator;
};

// One source row -> the window's columns.
void horizontal_row(const uint8_t* src, const AxisCoefficients& axis, int width, uint8_t* dst) {
  const int ksize = axis.ksize;
  for (int j = 0; j < width; ++j) {
    const uint8_t* in = src + size_t{3} * axis.first[j];
    const int32_t* k = &axis.taps[static_cast<size_t>(j) * ksize];
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
    dst += 3;
  }
}

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
  std::vector<uint8_t>& temp = scratch.temp;
  temp.resize(row_bytes * rows);
  if (need_horizontal) {
    AxisCoefficients& horizontal = scratch.horizontal;
    compute_axis(src.width, out_width, left, width, &horizontal);
    for (int r = 0; r < rows; ++r) {
      horizontal_row(src.pixels.data() + (row_first + r) * src_stride, horizontal, width,
                     temp.data() + r * row_bytes);
    }
  } else {
    for (int r = 0; r < rows; ++r) {
      std::memcpy(temp.data() + r * row_bytes,
                  src.pixels.data() + (row_first + r) * src_stride + size_t{3} * left, row_bytes);
    }
  }

  out->width = width;
  out->height = height;
  out->pixels.resize(row_bytes * height);
  if (!need_vertical) {
    std::memcpy(out->pixels.data(), temp.data(), row_bytes * height);
    return;
  }
  std::vector<int32_t>& acc = scratch.accumulator;
  acc.resize(row_bytes);
  const int ksize = vertical.ksize;
  for (int i = 0; i < height; ++i) {
    std::fill(acc.begin(), acc.end(), int32_t{1} << (kPrecisionBits - 1));
    const int32_t* k = &vertical.taps[static_cast<size_t>(i) * ksize];
    const uint8_t* in = temp.data() + (vertical.first[i] - row_first) * row_bytes;
    for (int y = 0; y < vertical.count[i]; ++y, in += row_bytes) {
      const int32_t ky = k[y];
      int32_t* a = acc.data();
      for (size_t b = 0; b < row_bytes; ++b) a[b] += in[b] * ky;
    }
    uint8_t* dst = out->pixels.data() + i * row_bytes;
    for (size_t b = 0; b < row_bytes; ++b) dst[b] = clip8(acc[b]);
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
