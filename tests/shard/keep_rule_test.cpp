// The filter keep/drop rule (shard/keep_rule.h) and the agreement it exists for: the rows the
// merge writes to output.jsonl are exactly the rows that `clipshard export` finds kept when it
// applies the rule to the sims parts with the cutoffs read back from summary.json, for thresholds,
// top_fractions, ties at the cutoff and a top_fraction of no rows (a null cutoff).
#include "shard/keep_rule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "common/shard_parts.h"
#include "common/test_paths.h"
#include "shard/merge.h"
#include "shard/run_directory.h"

namespace clipshard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(KeepRule, KeepsTiesAndComparesInDouble) {
  EXPECT_TRUE(filter_keeps(0.25f, 0.25));  // a tie is kept
  EXPECT_FALSE(filter_keeps(0.2f, 0.25));
  // 0.3f is slightly above 0.3 in double: kept by a threshold of 0.3, dropped by one just above.
  EXPECT_TRUE(filter_keeps(0.3f, 0.3));
  EXPECT_FALSE(filter_keeps(0.3f, std::nextafter(static_cast<double>(0.3f), 1.0)));
  EXPECT_FALSE(filter_keeps(1.0f, kInf));  // +infinity keeps nothing
  EXPECT_FALSE(filter_keeps(std::nanf(""), 0.0));
  EXPECT_FALSE(filter_keeps(0.5f, std::nan("")));
  EXPECT_TRUE(filter_keeps(-0.0f, 0.0));  // a bad row's -0.0 equals a cutoff of 0

  const float sims[3] = {0.9f, 0.1f, 0.9f};
  const double cutoffs[3] = {0.5, 0.5, 0.5};
  EXPECT_EQ(first_dropping_filter(sims, cutoffs, 3), 1u);
  EXPECT_EQ(first_dropping_filter(sims, cutoffs, 1), 1u);  // kept by all the filters asked
  EXPECT_EQ(first_dropping_filter(sims, cutoffs, 0), 0u);
}

TEST(KeepRule, TopFractionRank) {
  EXPECT_EQ(top_fraction_rank(0.5, 4), 2);
  EXPECT_EQ(top_fraction_rank(0.5, 5), 3);  // rounded up
  EXPECT_EQ(top_fraction_rank(1.0, 7), 7);
  EXPECT_EQ(top_fraction_rank(0.01, 7), 1);
  EXPECT_EQ(top_fraction_rank(0.5, 0), 0);
}

TEST(KeepRule, CutoffsSurviveSummaryJson) {
  for (double c : {0.0, 0.25, static_cast<double>(0.3f), 0.123456789012345678, kInf}) {
    const auto j = nlohmann::json::parse(nlohmann::json{{"c", cutoff_to_json(c)}}.dump());
    EXPECT_EQ(cutoff_from_json(j["c"]), c);
  }
  EXPECT_TRUE(cutoff_to_json(kInf).is_null());
  EXPECT_THROW(cutoff_from_json("0.5"), std::invalid_argument);
  EXPECT_THROW(cutoff_from_json(nlohmann::json::object()), std::invalid_argument);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Three shards of rows with two sims each, drawn from a few values so that many rows tie; for
// each rule set, the merge's output.jsonl against the export's reading of the same parts.
TEST(KeepRule, MergeAndExportKeepTheSameRows) {
  const std::vector<float> values = {0.0f, 0.1f, 0.2f, 0.25f, 0.3f, 0.3f, 0.3f, 0.5f, 0.7f};
  std::mt19937 rng(11);
  std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
  struct Shard {
    std::vector<std::string> rows;
    std::vector<float> sims;
  };
  std::vector<Shard> shards(3);
  int id = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    for (int r = 0; r < 40 + 7 * static_cast<int>(s); ++r) {
      shards[s].rows.push_back("{\"id\":" + std::to_string(id++) + "}");
      shards[s].sims.push_back(values[pick(rng)]);
      shards[s].sims.push_back(values[pick(rng)]);
    }
  }
  const std::vector<std::pair<std::string, std::vector<FilterRule>>> cases = {
      {"thresholds on tied values", {{"a", 0.25, std::nullopt}, {"b", 0.3, std::nullopt}}},
      {"two top_fractions", {{"a", 0.0, 0.3}, {"b", 0.0, 0.5}}},
      {"threshold, then top_fraction", {{"a", 0.2, std::nullopt}, {"b", 0.0, 0.4}}},
      {"top_fraction of no rows", {{"a", 2.0, std::nullopt}, {"b", 0.0, 0.5}}},
  };
  bool saw_tie_above_rank = false;
  for (const auto& [what, rules] : cases) {
    SCOPED_TRACE(what);
    testing::TempDir tmp;
    const RunDirectory dir(tmp.path() / "run");
    for (size_t s = 0; s < shards.size(); ++s)
      testing::write_finished_shard(dir, static_cast<int64_t>(s), shards[s].rows, shards[s].sims,
                                    "",
                                    {{"shard", s}, {"rank", 1}, {"rows", shards[s].rows.size()}});
    const MergeResult merged = merge_shards(dir, static_cast<int64_t>(shards.size()), rules);

    // The export's side: cutoffs as summary.json records them, the rule applied row by row.
    std::vector<double> cutoffs;
    for (const FilterOutcome& f : merged.filters) {
      const std::string summary =
          nlohmann::json{{"effective_threshold", cutoff_to_json(f.effective_threshold)}}.dump();
      cutoffs.push_back(cutoff_from_json(nlohmann::json::parse(summary)["effective_threshold"]));
    }
    ASSERT_EQ(cutoffs.size(), rules.size());
    if (rules[0].threshold > 1.0) {
      EXPECT_EQ(cutoffs[1], kInf);  // nothing alive: a null cutoff
    }
    std::vector<std::string> exported;
    for (const Shard& shard : shards)
      for (size_t r = 0; r < shard.rows.size(); ++r)
        if (first_dropping_filter(&shard.sims[2 * r], cutoffs.data(), 2) == 2)
          exported.push_back(shard.rows[r]);
    EXPECT_EQ(lines_of(read_file(dir.output())), exported);
    EXPECT_EQ(merged.rows_out, static_cast<int64_t>(exported.size()));

    for (size_t f = 0; f < rules.size(); ++f) {
      if (!rules[f].top_fraction) continue;
      // A top_fraction keeps at least its rank, more only through ties at the cutoff.
      const int64_t rank = top_fraction_rank(*rules[f].top_fraction, merged.filters[f].rows_in);
      EXPECT_GE(merged.filters[f].kept, rank) << rules[f].name;
      if (merged.filters[f].kept > rank) saw_tie_above_rank = true;
    }
  }
  EXPECT_TRUE(saw_tie_above_rank) << "no case exercised ties at a top_fraction cutoff";
}

}  // namespace
}  // namespace clipshard
