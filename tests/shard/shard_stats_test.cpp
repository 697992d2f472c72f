// ShardStats (shard/shard_stats.h): the done file's one serialiser round-trips, sums, and refuses
// what it does not know.
#include "shard/shard_stats.h"

#include <gtest/gtest.h>

namespace clipshard {
namespace {

ShardStats sample() {
  ShardStats s;
  s.lines = 10;
  s.rows = 8;
  s.blank_lines = 1;
  s.error_lines = 1;
  s.error_rows = 2;
  s.count_error("file_not_found");
  s.count_error("file_not_found");
  s.count_error("malformed_json");
  s.captions_truncated = 3;
  s.images_distinct = 7;
  s.images_decoded = 6;
  s.images_preprocessed = 11;
  s.embeddings = {5, 2, 6, 1};
  s.seconds = {1.5, 0.25, 2.0, 4.0};
  return s;
}

TEST(ShardStats, RoundTripsEveryField) {
  const ShardStats s = sample();
  const nlohmann::json j = shard_stats_to_json(s);
  EXPECT_EQ(j["seconds"]["decode_wait"], 0.25);  // measured and written
  EXPECT_EQ(j["errors"]["file_not_found"], 2);
  const ShardStats back = shard_stats_from_json(j, "test");
  EXPECT_EQ(shard_stats_to_json(back), j);
}

TEST(ShardStats, AddSumsEveryCounter) {
  ShardStats total;
  total.add(sample());
  total.add(sample());
  const nlohmann::json j = shard_stats_to_json(total);
  EXPECT_EQ(j["lines"], 20);
  EXPECT_EQ(j["errors"]["malformed_json"], 2);
  EXPECT_EQ(j["embeddings"]["text_reused"], 2);
  EXPECT_EQ(j["images"]["distinct"], 14);
  EXPECT_EQ(j["images"]["decoded"], 12);
  EXPECT_EQ(j["images"]["preprocessed"], 22);
  EXPECT_EQ(j["seconds"]["decode_wait"], 0.5);
  EXPECT_EQ(j["seconds"]["total"], 8.0);
}

TEST(ShardStats, ShardAndRankAreSkippedAndMissingCountersAreZero) {
  const ShardStats s = shard_stats_from_json(
      {{"shard", 3}, {"rank", 1}, {"rows", 4}, {"seconds", {{"model", 1.0}}}}, "test");
  EXPECT_EQ(s.rows, 4);
  EXPECT_EQ(s.lines, 0);
  EXPECT_EQ(s.seconds.model, 1.0);
  EXPECT_EQ(s.seconds.decode_wait, 0.0);
}

TEST(ShardStats, UnknownKeysAndWrongTypesAreErrorsNamingTheSource) {
  for (const nlohmann::json& bad :
       {nlohmann::json{{"rowz", 1}}, nlohmann::json{{"seconds", {{"decode", 1.0}}}},
        nlohmann::json{{"rows", "4"}}, nlohmann::json{{"errors", {{"x", "y"}}}},
        nlohmann::json{{"embeddings", 3}}, nlohmann::json::array()}) {
    try {
      shard_stats_from_json(bad, "parts/shard-00000001.done.json");
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("shard-00000001.done.json"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace clipshard
