// The score scales of worker/operator_spec.h: evaluator (cos+1)/2 clamped to [0, 1], filter
// clamp(cos, 0, 1) without -0.0, and the bad-row marks the merge recognises.
#include "worker/operator_spec.h"

#include <gtest/gtest.h>

#include <cmath>

namespace clipshard {
namespace {

TEST(ScoreScales, EvaluatorMapsCosineToZeroOne) {
  EXPECT_EQ(evaluator_score(1.0f), 1.0);
  EXPECT_EQ(evaluator_score(0.0f), 0.5);
  EXPECT_EQ(evaluator_score(-1.0f), 0.0);
  EXPECT_EQ(evaluator_score(0.25f), 0.625);
  EXPECT_EQ(evaluator_score(1.0001f), 1.0);  // rounding past 1 is clamped
  EXPECT_EQ(evaluator_score(-1.0001f), 0.0);
  // Computed in double from the float cosine: no float rounding of (cos + 1) / 2.
  const float c = 0.1f;
  EXPECT_EQ(evaluator_score(c), (static_cast<double>(c) + 1.0) / 2.0);
  EXPECT_EQ(kBadRowScore, 0.0);
}

TEST(ScoreScales, FilterClampsAndNeverGivesNegativeZero) {
  EXPECT_EQ(filter_similarity(0.3f), 0.3f);
  EXPECT_EQ(filter_similarity(-0.3f), 0.0f);
  EXPECT_EQ(filter_similarity(1.2f), 1.0f);
  EXPECT_FALSE(std::signbit(filter_similarity(-0.0f)));
  EXPECT_FALSE(std::signbit(filter_similarity(-0.5f)));
  // The bad-row mark compares like 0 but carries the sign bit.
  EXPECT_TRUE(std::signbit(kBadRowSimilarity));
  EXPECT_EQ(kBadRowSimilarity, 0.0f);
  EXPECT_FALSE(kBadRowSimilarity >= 0.25f);
}

}  // namespace
}  // namespace clipshard
