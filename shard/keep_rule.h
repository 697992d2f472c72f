// The keep/drop rule of filter steps, in one place: the merge applies it while it writes
// output.jsonl, and `clipshard export` applies it again, with the cutoffs the merge recorded in
// summary.json, to find which rows of the shard parts are in output.jsonl. A copy of the rule in
// either place could drift (a tie kept by one and dropped by the other) and the export would then
// refuse a run as changed after its merge.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace clipshard {

// True when a filter with `cutoff` keeps a row whose similarity (as stored in the sims part) is
// `sim`: sim >= cutoff, compared in double, so a row whose sim equals the cutoff (a tie at a
// top_fraction's k-th value) is kept. A cutoff of +infinity keeps nothing; a NaN sim (never
// written) or a NaN cutoff keeps nothing either.
inline bool filter_keeps(float sim, double cutoff) { return static_cast<double>(sim) >= cutoff; }

// The index of the first of `count` filters that drops a row whose sims are row_sims[0, count),
// with cutoffs[0, count) (filters in pipeline order); `count` when every one keeps it.
size_t first_dropping_filter(const float* row_sims, const double* cutoffs, size_t count);

// How many of `alive` rows a top_fraction filter keeps before ties: ceil(fraction * alive),
// at most `alive`. Its cutoff is the sim of the k-th best row (+infinity when k is 0), and
// filter_keeps then keeps every row tied with it.
int64_t top_fraction_rank(double fraction, int64_t alive);

// A cutoff as summary.json records it ("effective_threshold"): the number, or null for +infinity
// (JSON has no infinity; a top_fraction of no rows keeps nothing).
nlohmann::json cutoff_to_json(double cutoff);

// The inverse of cutoff_to_json: a number, or +infinity for null. Throws std::invalid_argument
// for any other JSON value.
double cutoff_from_json(const nlohmann::json& j);

}  // namespace clipshard
