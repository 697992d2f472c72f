#include "shard/merge.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "shard/atomic_file.h"
#include "shard/part_format.h"

namespace clipshard {

namespace {

// Sims are in [0, 1]; for non-negative floats the bit pattern orders like the value.
uint32_t ordered_bits(float v) {
  if (!(v > 0.0f)) return 0;  // 0, -0 and NaN sort lowest
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return bits;
}

// Decides, row by row, which filter steps keep a row, given the cutoffs known so far.
struct KeepDecider {
  const std::vector<FilterRule>* rules;
  std::vector<double> cutoffs;  // per filter; NaN = not yet known
  // Returns the index of the first filter that drops the row (or rules.size() if kept by all),
  // evaluating only the filters whose cutoffs are known, up to `limit`.
  size_t first_drop(const float* row_sims, size_t limit) const {
    for (size_t f = 0; f < limit; ++f) {
      if (!(static_cast<double>(row_sims[f]) >= cutoffs[f])) return f;
    }
    return limit;
  }
};

// The fine bin of a score (clamped into [0, kFineBins - 1]).
int fine_bin(double v) {
  if (!(v > 0.0)) return 0;
  if (v >= 1.0) return ScoreStats::kFineBins - 1;
  return static_cast<int>(v * ScoreStats::kFineBins);
}

// Skips JSON whitespace from `i`.
size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// `i` at an opening quote: the index after the closing one (npos if unterminated); sets
// `escaped` when the string holds a backslash.
size_t skip_string(std::string_view s, size_t i, bool& escaped) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      escaped = true;
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// `i` at the start of a value: the index after it (npos if malformed).
size_t skip_value(std::string_view s, size_t i) {
  bool escaped = false;
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return skip_string(s, i, escaped);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i, escaped);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;  // number, literal
  return i;
}

}  // namespace

std::optional<double> top_level_number(std::string_view line, const std::string& key) {
  // A scan of the top level rather than a full parse: the merge reads every output row, and a
  // full parse of each costs several times the whole merge (docs/PERFORMANCE.md, "Merge").
  auto full_parse = [&]() -> std::optional<double> {
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) return std::nullopt;
    const auto it = row.find(key);
    if (it == row.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  size_t i = skip_space(line, 0);
  if (i >= line.size() || line[i] != '{') return std::nullopt;
  i = skip_space(line, i + 1);
  if (i < line.size() && line[i] == '}') return std::nullopt;
  std::optional<double> found;
  while (i < line.size()) {
    if (line[i] != '"') return full_parse();  // not what dump_row writes: let the parser judge
    bool escaped = false;
    const size_t key_end = skip_string(line, i, escaped);
    if (key_end == std::string_view::npos) return std::nullopt;
    if (escaped) return full_parse();  // keys with escapes: compare decoded keys
    const std::string_view k = line.substr(i + 1, key_end - i - 2);
    i = skip_space(line, key_end);
    if (i >= line.size() || line[i] != ':') return std::nullopt;
    i = skip_space(line, i + 1);
    const size_t value_end = skip_value(line, i);
    if (value_end == std::string_view::npos) return std::nullopt;
    if (k == key) {
      // The last duplicate wins, as in nlohmann::json.
      found.reset();
      std::string_view token = line.substr(i, value_end - i);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t' ||
                                token.back() == '\n' || token.back() == '\r'))
        token.remove_suffix(1);
      const bool numeric = !token.empty() &&
                           (token[0] == '-' || (token[0] >= '0' && token[0] <= '9')) &&
                           token.find_first_not_of("0123456789+-.eE") == std::string_view::npos;
      double v = 0.0;
      // from_chars: locale-independent, no allocation.
      if (numeric) {
        const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
        if (ec == std::errc() && end == token.data() + token.size()) found = v;
      }
    }
    i = skip_space(line, value_end);
    if (i < line.size() && line[i] == ',') {
      i = skip_space(line, i + 1);
      continue;
    }
    if (i < line.size() && line[i] == '}') return found;
    return std::nullopt;
  }
  return std::nullopt;
}

namespace {}  // namespace

void ScoreStats::add(double score) {
  if (count == 0) {
    min = max = score;
  } else {
    min = std::min(min, score);
    max = std::max(max, score);
  }
  ++count;
  sum += score;
  ++fine[fine_bin(score)];
}

double ScoreStats::quantile(double q) const {
  if (count == 0) return std::nan("");
  const int64_t rank = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(q * static_cast<double>(count))), 1, count);
  if (rank == 1) return min;  // the ends are exact
  if (rank == count) return max;
  int64_t seen = 0;
  for (int b = 0; b < kFineBins; ++b) {
    seen += fine[b];
    if (seen >= rank) return std::clamp((b + 0.5) / kFineBins, min, max);
  }
  return max;
}

nlohmann::json ScoreStats::to_json(int display_bins, double mark) const {
  nlohmann::json j = {{"count", count}, {"bad_rows", bad_rows}};
  if (count == 0) return j;
  j["min"] = min;
  j["max"] = max;
  j["mean"] = sum / static_cast<double>(count);
  nlohmann::json q = nlohmann::json::object();
  for (int p : {1, 5, 10, 25, 50, 75, 90, 95, 99}) q["p" + std::to_string(p)] = quantile(p / 100.0);
  j["quantiles"] = q;
  // Display bins are whole groups of fine bins, so their counts are exact sums.
  int lo = fine_bin(min), hi = fine_bin(max) + 1;  // fine bins [lo, hi)
  if (std::isfinite(mark)) {
    lo = std::min(lo, fine_bin(mark));
    hi = std::max(hi, fine_bin(mark) + 1);
  }
  display_bins = std::max(1, display_bins);
  const int width = std::max(1, (hi - lo + display_bins - 1) / display_bins);
  int n = (hi - lo + width - 1) / width;
  if (std::isfinite(mark)) {
    // Start a display bin at the mark, so that each bin is wholly kept or wholly dropped (to the
    // fine resolution); this may cost one more bin.
    const int m = fine_bin(mark);
    // Only where such a start exists at or below the lowest score: the histogram always counts
    // every score, and a bin the mark falls into is the lesser evil.
    const int aligned = m - (m - lo + width - 1) / width * width;
    const int aligned_n = (hi - aligned + width - 1) / width;
    if (aligned >= 0 && aligned + aligned_n * width <= kFineBins) {
      lo = aligned;
      n = aligned_n;
    }
  }
  if (lo + n * width > kFineBins) lo = kFineBins - n * width;
  std::vector<int64_t> counts(n, 0);
  for (int b = lo; b < lo + n * width; ++b) counts[(b - lo) / width] += fine[b];
  j["histogram"] = {{"lo", static_cast<double>(lo) / kFineBins},
                    {"hi", static_cast<double>(lo + n * width) / kFineBins},
                    {"counts", counts}};
  return j;
}

MergeResult merge_shards(const RunDirectory& dir, int64_t shard_count,
                         const std::vector<FilterRule>& filters,
                         const std::vector<StepOutput>& steps,
                         const std::vector<ScoredStep>& scored) {
  MergeResult result;
  result.scores.resize(scored.size());
  result.error_examples = nlohmann::json::object();
  for (const auto& s : scored) {
    if (s.is_filter && s.filter_index >= filters.size())
      throw std::invalid_argument("merge_shards: a scored filter has no sims column");
  }
  const size_t columns = filters.size();
  KeepDecider decider{&filters, std::vector<double>(columns, std::nan(""))};

  // Pass 0: totals from the done files.
  for (int64_t s = 0; s < shard_count; ++s) {
    const auto parts = dir.shard_parts(s);
    if (!std::filesystem::exists(parts.done))
      throw std::runtime_error("cannot merge: shard " + std::to_string(s) + " is not finished");
    int rank = -1;
    const ShardStats stats = read_done_part(parts.done, &rank);
    result.shard_totals.add(stats);
    result.per_rank[rank].add(stats);
  }

  // Cutoffs, one filter at a time (a top_fraction is computed over the rows the earlier filters
  // keep): two histogram passes over the sims (16 high bits, then 16 low bits) find the exact k-th
  // largest value with constant memory.
  for (size_t f = 0; f < columns; ++f) {
    FilterOutcome outcome;
    outcome.name = filters[f].name;
    if (!filters[f].top_fraction) {
      decider.cutoffs[f] = filters[f].threshold;
      outcome.effective_threshold = filters[f].threshold;
      result.filters.push_back(outcome);
      continue;
    }
    std::vector<int64_t> high(1 << 16, 0), low(1 << 16, 0);
    int64_t alive = 0;
    auto for_each_alive = [&](auto&& fn) {
      for (int64_t s = 0; s < shard_count; ++s) {
        const auto sims = read_sims_part(dir.shard_parts(s).sims, columns);
        for (size_t r = 0; r + columns <= sims.size(); r += columns) {
          if (decider.first_drop(&sims[r], f) == f) fn(ordered_bits(sims[r + f]));
        }
      }
    };
    for_each_alive([&](uint32_t bits) {
      ++high[bits >> 16];
      ++alive;
    });
    const double fraction = *filters[f].top_fraction;
    const int64_t k = std::min<int64_t>(alive, static_cast<int64_t>(std::ceil(fraction * alive)));
    double cutoff = std::numeric_limits<double>::infinity();  // keeps nothing when k == 0
    if (k > 0) {
      int64_t above = 0;
      int bucket = (1 << 16) - 1;
      for (; bucket >= 0; --bucket) {
        if (above + high[bucket] >= k) break;
        above += high[bucket];
      }
      for_each_alive([&](uint32_t bits) {
        if (static_cast<int>(bits >> 16) == bucket) ++low[bits & 0xFFFF];
      });
      int sub = (1 << 16) - 1;
      for (; sub >= 0; --sub) {
        if (above + low[sub] >= k) break;
        above += low[sub];
      }
      const uint32_t bits = (static_cast<uint32_t>(bucket) << 16) | static_cast<uint32_t>(sub);
      float value;
      std::memcpy(&value, &bits, 4);
      cutoff = value;
    }
    decider.cutoffs[f] = cutoff;
    outcome.effective_threshold = cutoff;
    result.filters.push_back(outcome);
  }

  // Final pass: rows in plan order.
  AtomicFile output(dir.output());
  AtomicFile errors(dir.errors());
  std::vector<std::unique_ptr<AtomicFile>> step_files;
  for (const auto& step : steps) {
    std::filesystem::create_directories(step.path.parent_path());
    step_files.push_back(std::make_unique<AtomicFile>(step.path));
  }
  std::string line;
  for (int64_t s = 0; s < shard_count; ++s) {
    const auto parts = dir.shard_parts(s);
    const auto sims = read_sims_part(parts.sims, columns);
    std::ifstream rows(parts.output, std::ios::binary);
    if (!rows) throw std::runtime_error("cannot read shard part " + parts.output.string());
    size_t r = 0;
    while (std::getline(rows, line)) {
      if (columns > 0 && r + columns > sims.size())
        throw std::runtime_error("shard part " + parts.sims.string() + " has fewer rows than " +
                                 parts.output.string());
      const size_t drop = columns ? decider.first_drop(&sims[r], columns) : 0;
      for (size_t f = 0; f < columns && f <= drop; ++f) {
        ++result.filters[f].rows_in;
        if (f < drop)
          ++result.filters[f].kept;
        else
          ++result.filters[f].dropped;
      }
      // Score statistics of the operators this row reached (drop = the filter that dropped it).
      for (size_t k = 0; k < scored.size(); ++k) {
        const ScoredStep& step = scored[k];
        if (drop < step.filter_index) continue;  // dropped before reaching this operator
        if (step.is_filter) {
          const float sim = sims[r + step.filter_index];
          if (std::signbit(sim))
            ++result.scores[k].bad_rows;
          else
            result.scores[k].add(sim);
        } else {
          const auto score = top_level_number(line, step.output_key);
          if (!score || *score == 0.0)
            ++result.scores[k].bad_rows;
          else
            result.scores[k].add(*score);
        }
      }
      if (drop == columns) {
        output.write(line);
        output.write("\n", 1);
        ++result.rows_out;
      }
      for (size_t k = 0; k < steps.size(); ++k) {
        if (drop < steps[k].filters_applied) continue;
        if (steps[k].keys_to_remove.empty()) {
          step_files[k]->write(line);
        } else {
          auto row = nlohmann::ordered_json::parse(line);
          for (const auto& key : steps[k].keys_to_remove) row.erase(key);
          step_files[k]->write(
              row.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
        }
        step_files[k]->write("\n", 1);
      }
      r += columns;
    }
    if (r != sims.size())
      throw std::runtime_error("shard part " + parts.sims.string() + " has more rows than " +
                               parts.output.string());
    std::ifstream errs(parts.errors, std::ios::binary);
    while (errs && std::getline(errs, line)) {
      errors.write(line);
      errors.write("\n", 1);
      ++result.error_records;
      const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_object()) {
        const auto it = record.find("reason");
        const std::string reason =
            it != record.end() && it->is_string() ? it->get<std::string>() : "unknown";
        auto& examples = result.error_examples[reason];
        if (!examples.is_array()) examples = nlohmann::json::array();
        if (examples.size() < static_cast<size_t>(MergeResult::kErrorExamples))
          examples.push_back(record);
      }
    }
  }
  output.commit();
  errors.commit();
  for (auto& f : step_files) f->commit();
  return result;
}

}  // namespace clipshard
