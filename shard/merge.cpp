#include "shard/merge.h"

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "shard/atomic_file.h"

namespace clipshard {

namespace {

// Reads one shard's sims file: `columns` float32 per object row.
std::vector<float> read_sims(const std::filesystem::path& path, size_t columns) {
  std::vector<float> sims;
  if (columns == 0) return sims;
  const std::string bytes = read_file(path);
  if (bytes.size() % (4 * columns) != 0)
    throw std::runtime_error("shard part " + path.string() + " has a truncated sims record");
  sims.resize(bytes.size() / 4);
  std::memcpy(sims.data(), bytes.data(), bytes.size());
  return sims;
}

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

}  // namespace

void add_counters(nlohmann::json& into, const nlohmann::json& from) {
  if (!from.is_object()) return;
  if (!into.is_object()) into = nlohmann::json::object();
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_number()) {
      if (!into.contains(it.key())) into[it.key()] = 0;
      if (it.value().is_number_float() || into[it.key()].is_number_float())
        into[it.key()] = into[it.key()].get<double>() + it.value().get<double>();
      else
        into[it.key()] = into[it.key()].get<int64_t>() + it.value().get<int64_t>();
    } else if (it.value().is_object()) {
      add_counters(into[it.key()], it.value());
    }
  }
}

MergeResult merge_shards(const RunDirectory& dir, int64_t shard_count,
                         const std::vector<FilterRule>& filters,
                         const std::vector<StepOutput>& steps) {
  MergeResult result;
  result.shard_totals = nlohmann::json::object();
  result.per_rank = nlohmann::json::object();
  const size_t columns = filters.size();
  KeepDecider decider{&filters, std::vector<double>(columns, std::nan(""))};

  // Pass 0: totals from the done files.
  for (int64_t s = 0; s < shard_count; ++s) {
    const auto parts = dir.shard_parts(s);
    if (!std::filesystem::exists(parts.done))
      throw std::runtime_error("cannot merge: shard " + std::to_string(s) + " is not finished");
    auto done = nlohmann::json::parse(read_file(parts.done));
    const std::string rank = std::to_string(done.value("rank", -1));
    done.erase("shard");
    done.erase("rank");
    add_counters(result.shard_totals, done);
    add_counters(result.per_rank[rank], done);
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
        const auto sims = read_sims(dir.shard_parts(s).sims, columns);
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
    const auto sims = read_sims(parts.sims, columns);
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
    }
  }
  output.commit();
  errors.commit();
  for (auto& f : step_files) f->commit();
  return result;
}

}  // namespace clipshard
