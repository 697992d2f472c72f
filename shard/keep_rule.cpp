#include "shard/keep_rule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace clipshard {

size_t first_dropping_filter(const float* row_sims, const double* cutoffs, size_t count) {
  for (size_t f = 0; f < count; ++f) {
    if (!filter_keeps(row_sims[f], cutoffs[f])) return f;
  }
  return count;
}

int64_t top_fraction_rank(double fraction, int64_t alive) {
  return std::min<int64_t>(alive,
                           static_cast<int64_t>(std::ceil(fraction * static_cast<double>(alive))));
}

nlohmann::json cutoff_to_json(double cutoff) {
  return std::isfinite(cutoff) ? nlohmann::json(cutoff) : nlohmann::json(nullptr);
}

double cutoff_from_json(const nlohmann::json& j) {
  if (j.is_null()) return std::numeric_limits<double>::infinity();
  if (!j.is_number())
    throw std::invalid_argument("a filter cutoff is a number or null, not " + j.dump());
  return j.get<double>();
}

}  // namespace clipshard
