// The merge's per-operator score statistics (ScoreStats) and error examples.
#include <algorithm>
#include <cmath>
#include <random>

#include "common/shard_parts.h"
#include "common/test_paths.h"
#include "shard/atomic_file.h"
#include "shard/merge.h"
#include "shard/run_directory.h"

namespace clipshard {
namespace {

void write_shard(const RunDirectory& dir, int64_t id, const std::vector<std::string>& rows,
                 const std::vector<float>& sims, const std::string& errors = "") {
  testing::write_finished_shard(dir, id, rows, sims, errors, {{"shard", id}, {"rank", 1}});
}

// The exact nearest-rank quantile of `v`.
double nearest_rank(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto rank = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(q * v.size())), 1,
                                        static_cast<int64_t>(v.size()));
  return v[rank - 1];
}

TEST(ScoreStats, QuantilesWithinTheDocumentedResolution) {
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.6, 0.03);
  std::vector<double> values;
  ScoreStats stats;
  for (int i = 0; i < 20000; ++i) {
    const double v = std::clamp(normal(rng), 0.0, 1.0);
    values.push_back(v);
    stats.add(v);
  }
  const double resolution = 0.5 / ScoreStats::kFineBins;
  for (double q : {0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99})
    EXPECT_NEAR(stats.quantile(q), nearest_rank(values, q), resolution + 1e-12) << q;
  const auto j = stats.to_json(50);
  EXPECT_EQ(j["count"], 20000);
  EXPECT_DOUBLE_EQ(j["min"].get<double>(), *std::min_element(values.begin(), values.end()));
  EXPECT_DOUBLE_EQ(j["max"].get<double>(), *std::max_element(values.begin(), values.end()));
  int64_t total = 0;
  for (const auto& c : j["histogram"]["counts"]) total += c.get<int64_t>();
  EXPECT_EQ(total, 20000);
  EXPECT_LE(j["histogram"]["counts"].size(), 50u);
  EXPECT_LE(j["histogram"]["lo"].get<double>(), j["min"].get<double>());
  EXPECT_GE(j["histogram"]["hi"].get<double>(), j["max"].get<double>());
  // The histogram zooms on the data: the scores span ~0.25, not [0, 1].
  EXPECT_LT(j["histogram"]["hi"].get<double>() - j["histogram"]["lo"].get<double>(), 0.5);
}

TEST(ScoreStats, HistogramCountsEveryScoreWhateverTheMark) {
  // A filter's clamped similarity of 0 with a cut at 0.1: the bin edge the cut would want below 0
  // does not exist, and the zero must still be drawn (it was lost from the display once).
  for (double mark : {0.1, 0.0017, 0.5, 0.999}) {
    ScoreStats stats;
    for (double v : {0.0, 0.06, 0.07, 0.08, 0.09, 0.09, 0.21, 0.2153}) stats.add(v);
    const auto j = stats.to_json(50, mark);
    int64_t drawn = 0;
    for (const auto& c : j["histogram"]["counts"]) drawn += c.get<int64_t>();
    EXPECT_EQ(drawn, stats.count) << "mark " << mark;
    EXPECT_LE(j["histogram"]["lo"].get<double>(), j["min"].get<double>()) << "mark " << mark;
    EXPECT_GE(j["histogram"]["hi"].get<double>(), j["max"].get<double>()) << "mark " << mark;
  }
}

TEST(ScoreStats, HistogramRangeIncludesTheMark) {
  ScoreStats stats;
  for (double v : {0.6, 0.61, 0.62}) stats.add(v);
  const auto j = stats.to_json(10, 0.25);
  EXPECT_LE(j["histogram"]["lo"].get<double>(), 0.25);
  // A bin edge falls on the mark (to the fine resolution): bins are wholly below or above it.
  const double lo = j["histogram"]["lo"], hi = j["histogram"]["hi"];
  const size_t n = j["histogram"]["counts"].size();
  EXPECT_LE(n, 11u);
  const double edge = (0.25 - lo) / ((hi - lo) / n);
  EXPECT_NEAR(edge, std::round(edge), n * 2.0 / ScoreStats::kFineBins / (hi - lo));
  EXPECT_EQ(ScoreStats().to_json().dump(), R"({"bad_rows":0,"count":0})");
  EXPECT_TRUE(std::isnan(ScoreStats().quantile(0.5)));
}

TEST(MergeStats, BadRowsAreCountedApartAndDroppedRowsDoNotReachLaterOperators) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  // Pipeline: evaluator "s", filter (threshold 0.3), evaluator "t". Row 2 is bad for everything
  // (evaluator scores 0.0, filter sim -0.0); row 1 is dropped by the filter.
  write_shard(dir, 0,
              {R"({"s":0.7,"t":0.8})", R"({"s":0.6,"t":0.5})", R"({"s":0.0,"t":0.0})",
               R"({"s":0.9,"t":0.4})"},
              {0.5f, 0.2f, -0.0f, 0.35f},
              R"({"manifest":"m","line":3,"reason":"file_not_found","message":"<img>"})"
              "\n");
  const std::vector<ScoredStep> scored = {{false, 0, "s"}, {true, 0, ""}, {false, 1, "t"}};
  const auto result = merge_shards(dir, 1, {{"ImageClipFilter", 0.3, std::nullopt}}, {}, scored);
  EXPECT_EQ(read_file(dir.output()), "{\"s\":0.7,\"t\":0.8}\n{\"s\":0.9,\"t\":0.4}\n");
  ASSERT_EQ(result.scores.size(), 3u);
  EXPECT_EQ(result.scores[0].count, 3);
  EXPECT_EQ(result.scores[0].bad_rows, 1);
  EXPECT_DOUBLE_EQ(result.scores[0].max, 0.9);
  EXPECT_EQ(result.scores[1].count, 3);
  EXPECT_EQ(result.scores[1].bad_rows, 1);
  EXPECT_FLOAT_EQ(static_cast<float>(result.scores[1].min), 0.2f);
  // Only the two kept rows reach the last evaluator.
  EXPECT_EQ(result.scores[2].count, 2);
  EXPECT_EQ(result.scores[2].bad_rows, 0);
  EXPECT_DOUBLE_EQ(result.scores[2].sum, 1.2);
  // A -0.0 sim is still dropped like 0 (threshold 0.3) and kept by a threshold of 0.
  EXPECT_EQ(result.filters[0].dropped, 2);
  ASSERT_TRUE(result.error_examples.contains("file_not_found"));
  EXPECT_EQ(result.error_examples["file_not_found"][0]["line"], 3);
}

TEST(MergeStats, MinusZeroSimPassesAZeroThreshold) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  write_shard(dir, 0, {"{}", "{}"}, {-0.0f, 0.0f});
  const auto result =
      merge_shards(dir, 1, {{"ImageClipFilter", 0.0, std::nullopt}}, {}, {{true, 0, ""}});
  EXPECT_EQ(result.rows_out, 2);
  EXPECT_EQ(result.scores[0].bad_rows, 1);
  EXPECT_EQ(result.scores[0].count, 1);
}

TEST(MergeStats, ErrorExamplesAreBoundedPerReason) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  std::string errors;
  for (int i = 0; i < 10; ++i)
    errors += R"({"manifest":"m","line":)" + std::to_string(i) +
              R"(,"reason":"bad_json"})"
              "\n";
  errors += "not json\n";
  write_shard(dir, 0, {}, {}, errors);
  const auto result = merge_shards(dir, 1, {});
  EXPECT_EQ(result.error_records, 11);
  ASSERT_EQ(result.error_examples["bad_json"].size(),
            static_cast<size_t>(MergeResult::kErrorExamples));
  EXPECT_EQ(result.error_examples["bad_json"][0]["line"], 0);
}

}  // namespace
}  // namespace clipshard

namespace clipshard {
namespace {

TEST(TopLevelNumber, AgreesWithAFullParse) {
  const std::vector<std::string> lines = {
      R"({"a":1,"s":0.625})",
      R"({"s":0.5,"a":{"s":7}})",
      R"({"a":{"s":7},"b":["s",{"s":8}],"c":"\"s\":9"})",  // only nested / quoted "s"
      R"({"a":"x\\","s":-1.5e-3})",
      R"( { "s" : 0.25 , "t" : true } )",
      R"({"s":"0.5"})",
      R"({"s":null})",
      R"({"s":[1]})",
      R"({"\u0073":0.75})",  // escaped key: "s" after unescaping
      R"({"s":1,"s":2})",    // last duplicate wins
      R"({})",
      R"([{"s":1}])",
      R"({"s":1)",
      "not json",
      R"({"sx":1,"x":{"s":{"s":3}},"s":0})",
  };
  for (const auto& line : lines) {
    const auto parsed = nlohmann::json::parse(line, nullptr, false);
    std::optional<double> expected;
    if (parsed.is_object() && parsed.contains("s") && parsed["s"].is_number())
      expected = parsed["s"].get<double>();
    EXPECT_EQ(top_level_number(line, "s"), expected) << line;
  }
}

}  // namespace
}  // namespace clipshard
