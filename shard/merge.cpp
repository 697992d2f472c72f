#include "shard/merge.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "shard/atomic_file.h"
#include "shard/keep_rule.h"
#include "shard/part_format.h"

namespace clipshard {

namespace {

// A file's lines, read in large blocks (no per-line allocation or stream overhead: the merge
// reads every row of the run). A last line without "\n" is a line too. Memory: one block, or the
// longest line when it is longer.
class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path) : path_(path), buffer_(kBlock) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      throw std::runtime_error("cannot read shard part " + path.string() + ": " +
                               std::strerror(errno));
  }
  ~LineReader() { ::close(fd_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its "\n", valid until the next call; false at the end of the file.
  bool next(std::string_view* line) {
    for (;;) {
      const char* start = buffer_.data() + begin_;
      if (const void* nl = std::memchr(start, '\n', end_ - begin_)) {
        const size_t length = static_cast<const char*>(nl) - start;
        *line = std::string_view(start, length);
        begin_ += length + 1;
        newline_follows_ = true;
        return true;
      }
      if (eof_) {
        if (begin_ == end_) return false;
        *line = std::string_view(start, end_ - begin_);
        begin_ = end_;
        newline_follows_ = false;
        return true;
      }
      fill();
    }
  }

  // The last line as it should be written out: with its "\n" (one write instead of two); added
  // to `scratch` for a last line that had none.
  std::string_view with_newline(std::string_view line, std::string& scratch) const {
    if (newline_follows_) return std::string_view(line.data(), line.size() + 1);
    scratch.assign(line);
    scratch += '\n';
    return scratch;
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 20;
  // Keeps the partial line, makes room (doubling for a line longer than the buffer), reads.
  void fill() {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    if (buffer_.size() - end_ < kBlock / 2) buffer_.resize(buffer_.size() * 2);
    for (;;) {
      const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw std::runtime_error("cannot read shard part " + path_.string() + ": " +
                                 std::strerror(errno));
      if (n == 0) eof_ = true;
      end_ += static_cast<size_t>(n);
      return;
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  bool newline_follows_ = false;
};

// True when the file is empty or ends with "\n" (its lines can be appended as they are).
bool ends_with_newline(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error("cannot read shard part " + path.string() + ": " +
                             std::strerror(errno));
  char last = '\n';
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const bool ok = size == 0 || (size > 0 && ::pread(fd, &last, 1, size - 1) == 1 && last == '\n');
  ::close(fd);
  return ok;
}

// Sims are in [0, 1]; for non-negative floats the bit pattern orders like the value.
uint32_t ordered_bits(float v) {
  if (!(v > 0.0f)) return 0;  // 0, -0 and NaN sort lowest
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return bits;
}

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

namespace {

// What a scan of an object's top level found for one key.
enum class TopLevelScan {
  kFound,      // `token`: the raw value of the key's last occurrence (the last duplicate wins)
  kAbsent,     // a well-formed object without the key
  kMalformed,  // not an object, or broken
  kNeedParse,  // keys with escapes or other forms the scan does not judge: parse the line
};

// A scan of the top level rather than a full parse: the merge reads every output row, and a full
// parse of each costs several times the whole merge (docs/PERFORMANCE.md, "Merge").
TopLevelScan scan_top_level(std::string_view line, std::string_view key, std::string_view* token) {
  size_t i = skip_space(line, 0);
  if (i >= line.size() || line[i] != '{') return TopLevelScan::kMalformed;
  i = skip_space(line, i + 1);
  if (i < line.size() && line[i] == '}') return TopLevelScan::kAbsent;
  bool found = false;
  while (i < line.size()) {
    if (line[i] != '"') return TopLevelScan::kNeedParse;  // not what dump_row writes
    bool escaped = false;
    const size_t key_end = skip_string(line, i, escaped);
    if (key_end == std::string_view::npos) return TopLevelScan::kMalformed;
    if (escaped) return TopLevelScan::kNeedParse;  // keys with escapes: compare decoded keys
    const std::string_view k = line.substr(i + 1, key_end - i - 2);
    i = skip_space(line, key_end);
    if (i >= line.size() || line[i] != ':') return TopLevelScan::kMalformed;
    i = skip_space(line, i + 1);
    const size_t value_end = skip_value(line, i);
    if (value_end == std::string_view::npos) return TopLevelScan::kMalformed;
    if (k == key) {
      found = true;
      *token = line.substr(i, value_end - i);
      while (!token->empty() && (token->back() == ' ' || token->back() == '\t' ||
                                 token->back() == '\n' || token->back() == '\r'))
        token->remove_suffix(1);
    }
    i = skip_space(line, value_end);
    if (i < line.size() && line[i] == ',') {
      i = skip_space(line, i + 1);
      continue;
    }
    if (i < line.size() && line[i] == '}')
      return found ? TopLevelScan::kFound : TopLevelScan::kAbsent;
    return TopLevelScan::kMalformed;
  }
  return TopLevelScan::kMalformed;
}

// The "reason" of an error record ("unknown" when it has none); nullopt when the record is not a
// JSON object. The scan answers for the records workers write (a plain string), a parse for the
// rest; a run with many bad rows would otherwise parse each of them.
std::optional<std::string> error_reason(std::string_view record) {
  std::string_view token;
  if (scan_top_level(record, "reason", &token) == TopLevelScan::kFound && token.size() >= 2 &&
      token.front() == '"' && token.back() == '"' && token.find('\\') == std::string_view::npos)
    return std::string(token.substr(1, token.size() - 2));
  const auto j = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto it = j.find("reason");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "unknown";
}

}  // namespace

std::optional<double> top_level_number(std::string_view line, const std::string& key) {
  std::string_view token;
  switch (scan_top_level(line, key, &token)) {
    case TopLevelScan::kAbsent:
    case TopLevelScan::kMalformed:
      return std::nullopt;
    case TopLevelScan::kNeedParse: {
      const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!row.is_object()) return std::nullopt;
      const auto it = row.find(key);
      if (it == row.end() || !it->is_number()) return std::nullopt;
      return it->get<double>();
    }
    case TopLevelScan::kFound:
      break;
  }
  const bool numeric = !token.empty() &&
                       (token[0] == '-' || (token[0] >= '0' && token[0] <= '9')) &&
                       token.find_first_not_of("0123456789+-.eE") == std::string_view::npos;
  if (!numeric) return std::nullopt;
  double v = 0.0;
  // from_chars: locale-independent, no allocation.
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec == std::errc() && end == token.data() + token.size()) return v;
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
  // Per filter, in pipeline order; NaN until known (a filter's cutoff may depend on the earlier
  // ones: top_fraction counts the rows they keep).
  std::vector<double> cutoffs(columns, std::nan(""));

  // Pass 0: each shard's statistics from its done file, and their totals.
  std::vector<ShardStats> shard_stats;
  shard_stats.reserve(static_cast<size_t>(shard_count));
  for (int64_t s = 0; s < shard_count; ++s) {
    const auto parts = dir.shard_parts(s);
    if (!std::filesystem::exists(parts.done))
      throw std::runtime_error("cannot merge: shard " + std::to_string(s) + " is not finished");
    int rank = -1;
    shard_stats.push_back(read_done_part(parts.done, &rank));
    result.shard_totals.add(shard_stats.back());
    result.per_rank[rank].add(shard_stats.back());
  }

  // Cutoffs, one filter at a time (a top_fraction is computed over the rows the earlier filters
  // keep): two histogram passes over the sims (16 high bits, then 16 low bits) find the exact k-th
  // largest value with constant memory.
  for (size_t f = 0; f < columns; ++f) {
    FilterOutcome outcome;
    outcome.name = filters[f].name;
    if (!filters[f].top_fraction) {
      cutoffs[f] = filters[f].threshold;
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
          if (first_dropping_filter(&sims[r], cutoffs.data(), f) == f)
            fn(ordered_bits(sims[r + f]));
        }
      }
    };
    for_each_alive([&](uint32_t bits) {
      ++high[bits >> 16];
      ++alive;
    });
    const double fraction = *filters[f].top_fraction;
    const int64_t k = top_fraction_rank(fraction, alive);
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
    cutoffs[f] = cutoff;
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
  // Nothing to decide or measure per row: each output part is appended whole, by the kernel.
  const bool whole_parts = columns == 0 && scored.empty() && steps.empty();
  std::string_view line;
  std::string scratch;
  for (int64_t s = 0; s < shard_count; ++s) {
    const auto parts = dir.shard_parts(s);
    // A negative row count (a damaged done file) is not trusted: such a part is read line by line.
    if (whole_parts && shard_stats[s].rows >= 0 && ends_with_newline(parts.output)) {
      output.append_file(parts.output);
      result.rows_out += shard_stats[s].rows;
    } else {
      const auto sims = read_sims_part(parts.sims, columns);
      LineReader rows(parts.output);
      size_t r = 0;
      while (rows.next(&line)) {
        if (columns > 0 && r + columns > sims.size())
          throw std::runtime_error("shard part " + parts.sims.string() + " has fewer rows than " +
                                   parts.output.string());
        const size_t drop = columns ? first_dropping_filter(&sims[r], cutoffs.data(), columns) : 0;
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
          output.write(rows.with_newline(line, scratch));
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
    }
    if (std::filesystem::exists(parts.errors)) {
      LineReader errs(parts.errors);
      std::string_view record;
      while (errs.next(&record)) {
        errors.write(record);
        errors.write("\n", 1);
        ++result.error_records;
        const auto reason = error_reason(record);
        if (!reason) continue;
        auto& examples = result.error_examples[*reason];
        if (!examples.is_array()) examples = nlohmann::json::array();
        if (examples.size() < static_cast<size_t>(MergeResult::kErrorExamples)) {
          auto j = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
          if (j.is_object()) examples.push_back(std::move(j));
        }
      }
    }
  }
  output.commit();
  errors.commit();
  for (auto& f : step_files) f->commit();
  return result;
}

}  // namespace clipshard
