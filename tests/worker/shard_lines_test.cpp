// The one walk over a shard's lines (worker/shard_lines.h) that both processors use: blank lines,
// broken lines, object rows, a shard in the middle of a manifest, an input shorter than planned,
// and stopping from the per-line hook.
#include "worker/shard_lines.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/test_paths.h"

namespace clipshard {
namespace {

ShardTask task_of(const std::filesystem::path& manifest, int64_t first_line, int64_t byte_begin,
                  int64_t lines) {
  ShardTask task;
  task.manifest = manifest.string();
  task.url = task.manifest;
  task.shard.first_line = first_line;
  task.shard.byte_begin = byte_begin;
  task.shard.line_count = lines;
  return task;
}

std::filesystem::path write_manifest(const std::filesystem::path& dir) {
  const auto path = dir / "m.jsonl";
  std::ofstream(path) << "{\"a\": 1}\n"   // 1
                      << "\n"             // 2 blank
                      << "{\"a\": 2}\n"   // 3
                      << "not json\n"     // 4 broken
                      << "  \t\n"         // 5 blank
                      << "[1]\n"          // 6 broken: not an object
                      << "{\"a\": 3}\n";  // 7
  return path;
}

TEST(ForEachShardLine, RowsBlankAndBrokenLines) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  ShardStats stats;
  std::vector<ErrorRecord> errors;
  std::vector<int64_t> row_lines, after;
  std::vector<int> values;
  const bool walked = for_each_shard_line(
      task_of(manifest, 1, 0, 7), &stats, &errors,
      [&](SourceRow& row) {
        row_lines.push_back(row.line);
        values.push_back(row.parsed.object["a"].get<int>());
      },
      [&](int64_t done) {
        after.push_back(done);
        return true;
      });
  EXPECT_TRUE(walked);
  EXPECT_EQ(row_lines, (std::vector<int64_t>{1, 3, 7}));
  EXPECT_EQ(values, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(after, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(stats.blank_lines, 2);
  EXPECT_EQ(stats.error_lines, 2);
  EXPECT_EQ(stats.rows, 0);  // the caller's to count
  EXPECT_EQ(stats.errors.at("malformed_json"), 1);
  EXPECT_EQ(stats.errors.at("not_an_object"), 1);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].line, 4);
  EXPECT_EQ(errors[0].manifest, manifest.string());
  EXPECT_EQ(errors[0].op, "");
  EXPECT_EQ(errors[0].key, "");
  EXPECT_FALSE(errors[0].from_tar);
  EXPECT_EQ(errors[1].line, 6);
  EXPECT_EQ(errors[1].status.code, RowError::kNotAnObject);
}

TEST(ForEachShardLine, AShardFromTheMiddleOfAManifest) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  // Lines 3..5 start after "{"a": 1}\n\n" (10 bytes).
  ShardStats stats;
  std::vector<ErrorRecord> errors;
  std::vector<int64_t> row_lines;
  EXPECT_TRUE(for_each_shard_line(task_of(manifest, 3, 10, 3), &stats, &errors,
                                  [&](SourceRow& row) { row_lines.push_back(row.line); }));
  EXPECT_EQ(row_lines, (std::vector<int64_t>{3}));
  EXPECT_EQ(stats.blank_lines, 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 4);
}

TEST(ForEachShardLine, AfterLineStopsTheWalk) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  ShardStats stats;
  std::vector<ErrorRecord> errors;
  int rows = 0;
  EXPECT_FALSE(for_each_shard_line(
      task_of(manifest, 1, 0, 7), &stats, &errors, [&](SourceRow&) { ++rows; },
      [&](int64_t done) { return done < 3; }));
  EXPECT_EQ(rows, 2);  // lines 1..3 walked
  EXPECT_EQ(stats.blank_lines, 1);
  EXPECT_TRUE(errors.empty());
}

TEST(ForEachShardLine, AnInputShorterThanPlannedThrowsNamingIt) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path());
  ShardStats stats;
  std::vector<ErrorRecord> errors;
  try {
    for_each_shard_line(task_of(manifest, 1, 0, 9), &stats, &errors, [](SourceRow&) {});
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(manifest.string()), std::string::npos) << what;
    EXPECT_NE(what.find("shorter than planned"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace clipshard
