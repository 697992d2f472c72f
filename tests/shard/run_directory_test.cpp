#include "shard/run_directory.h"

#include <fstream>

#include "common/shard_parts.h"
#include "common/test_paths.h"
#include "shard/atomic_file.h"
#include "shard/merge.h"

namespace clipshard {
namespace {

void write_shard(const RunDirectory& dir, int64_t id, const std::vector<std::string>& rows,
                 const std::vector<float>& sims, int rank = 1) {
  testing::write_finished_shard(
      dir, id, rows, sims, "{\"line\":" + std::to_string(id) + "}\n",
      {{"shard", id}, {"rank", rank}, {"rows", rows.size()}, {"errors", {{"file_not_found", 1}}}});
}

TEST(AtomicFile, AppearsOnlyOnCommit) {
  testing::TempDir tmp;
  const auto path = tmp.path() / "f.txt";
  {
    AtomicFile f(path);
    f.write("abc");
    EXPECT_FALSE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
  {
    AtomicFile f(path);
    f.write("abc");
    f.commit();
  }
  EXPECT_EQ(read_file(path), "abc");
}

TEST(AtomicFile, AppendFileCopiesWholeFilesBetweenWrites) {
  testing::TempDir tmp;
  write_file_atomically(tmp.path() / "a", "first\nsecond\n");
  std::string big(3 << 20, 'x');  // more than one copy/read block
  for (size_t i = 0; i < big.size(); i += 4097) big[i] = static_cast<char>('a' + i % 26);
  write_file_atomically(tmp.path() / "big", big);
  write_file_atomically(tmp.path() / "empty", "");
  const auto path = tmp.path() / "out";
  {
    AtomicFile f(path);
    f.write("head:");
    EXPECT_EQ(f.append_file(tmp.path() / "a"), 13);
    f.write("mid:");
    EXPECT_EQ(f.append_file(tmp.path() / "empty"), 0);
    EXPECT_EQ(f.append_file(tmp.path() / "big"), static_cast<int64_t>(big.size()));
    f.write(":tail");
    f.commit();
  }
  EXPECT_EQ(read_file(path), "head:first\nsecond\nmid:" + big + ":tail");
  AtomicFile f(tmp.path() / "other");
  EXPECT_THROW(f.append_file(tmp.path() / "missing"), std::runtime_error);
}

TEST(AtomicFile, UnwritableDirectoryIsAClearError) {
  try {
    AtomicFile f("/proc/clipshard-cannot-write-here/x");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos);
  }
}

TEST(RunLock, SecondHolderIsRefused) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  RunLock first(dir.lock());
  try {
    RunLock second(dir.lock());
    FAIL() << "second lock acquired";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another clipshard run"), std::string::npos);
  }
}

TEST(RunState, ResumeAndChangeDetection) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  RunIdentity id{{{"threshold", 0.25}}, nlohmann::json::array({{{"path", "a"}}}), 10, 3, {}};
  EXPECT_EQ(check_or_write_state(dir, id), StateCheck::kNewRun);
  EXPECT_EQ(check_or_write_state(dir, id), StateCheck::kResume);
  RunIdentity changed = id;
  changed.config["threshold"] = 0.3;
  try {
    check_or_write_state(dir, changed);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/threshold"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--restart"), std::string::npos);
  }
  RunIdentity other_input = id;
  other_input.manifests[0]["path"] = "b";
  EXPECT_THROW(check_or_write_state(dir, other_input), std::runtime_error);
  dir.clear_for_restart();
  EXPECT_EQ(check_or_write_state(dir, changed), StateCheck::kNewRun);
}

TEST(RunState, MergeSettingsMayChangeAndAreRecordedAfterTheMerge) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  RunIdentity id{
      {{"model", "m"}}, nlohmann::json::array({{{"path", "a"}}}), 10, 3, {{"threshold", 0.25}}};
  nlohmann::json previous;
  EXPECT_EQ(check_or_write_state(dir, id, &previous), StateCheck::kNewRun);
  EXPECT_EQ(previous, id.merge_settings);
  RunIdentity rethreshold = id;
  rethreshold.merge_settings["threshold"] = 0.4;
  EXPECT_EQ(check_or_write_state(dir, rethreshold, &previous), StateCheck::kResume);
  EXPECT_EQ(previous, id.merge_settings);  // state.json is not rewritten by the check
  record_merge_settings(dir, rethreshold.merge_settings);
  EXPECT_EQ(check_or_write_state(dir, id, &previous), StateCheck::kResume);
  EXPECT_EQ(previous, rethreshold.merge_settings);
  const auto state = nlohmann::json::parse(read_file(dir.state()));
  EXPECT_EQ(state["merge_settings"], rethreshold.merge_settings);
  EXPECT_EQ(state["config"], id.config);
}

TEST(Merge, KeepsPlanOrderAndAppliesThreshold) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  // Written out of order on purpose: the merge follows shard ids.
  write_shard(dir, 1, {"c", "d"}, {0.9f, 0.1f}, 2);
  write_shard(dir, 0, {"a", "b"}, {0.3f, 0.2f}, 1);
  auto result = merge_shards(dir, 2, {{"ImageClipFilter", 0.25, std::nullopt}});
  EXPECT_EQ(read_file(dir.output()), "a\nc\n");
  EXPECT_EQ(read_file(dir.errors()), "{\"line\":0}\n{\"line\":1}\n");
  EXPECT_EQ(result.rows_out, 2);
  EXPECT_EQ(result.filters[0].kept, 2);
  EXPECT_EQ(result.filters[0].dropped, 2);
  EXPECT_EQ(result.shard_totals.rows, 4);
  EXPECT_EQ(result.shard_totals.errors.at("file_not_found"), 2);
  EXPECT_EQ(result.per_rank.at(2).rows, 2);
}

TEST(Merge, WithoutFiltersWholePartsAreAppendedAndLinesKeptExactly) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  const std::string long_row = "{\"caption\":\"" + std::string((3 << 20) + 7, 'y') + "\"}";
  write_shard(dir, 0, {"a", "b"}, {});
  write_shard(dir, 1, {long_row, "c"}, {});
  write_shard(dir, 2, {}, {});
  // A part without its last newline (not what a worker writes) still gives whole lines.
  write_file_atomically(dir.shard_parts(2).output, "d\ne");
  write_file_atomically(dir.shard_parts(2).done, R"({"shard": 2, "rank": 1, "rows": 2})");
  const std::string expected = "a\nb\n" + long_row + "\nc\nd\ne\n";
  auto plain = merge_shards(dir, 3, {});
  EXPECT_EQ(read_file(dir.output()), expected);
  EXPECT_EQ(plain.rows_out, 6);
  EXPECT_EQ(plain.error_records, 3);
  // Row by row (a filter that keeps everything, with its sims): the same bytes.
  RunDirectory filtered(tmp.path() / "filtered");
  write_shard(filtered, 0, {"a", "b"}, {0.5f, 0.5f});
  write_shard(filtered, 1, {long_row, "c"}, {0.5f, 0.5f});
  write_shard(filtered, 2, {"d", "e"}, {0.5f, 0.5f});
  write_file_atomically(filtered.shard_parts(2).output, "d\ne");
  auto rows = merge_shards(filtered, 3, {{"ImageClipFilter", 0.25, std::nullopt}});
  EXPECT_EQ(read_file(filtered.output()), expected);
  EXPECT_EQ(rows.rows_out, 6);
}

TEST(Merge, TopFractionIsExactAndSequential) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  // Two filters: first keeps sim0 >= 0.5, second keeps the top 50% of the survivors by sim1.
  write_shard(dir, 0, {"r0", "r1", "r2"}, {0.9f, 0.10f, 0.4f, 0.99f, 0.6f, 0.30f});
  write_shard(dir, 1, {"r3", "r4"}, {0.7f, 0.20f, 0.8f, 0.25f});
  std::vector<FilterRule> rules = {{"f1", 0.5, std::nullopt}, {"f2", 0.0, 0.5}};
  auto result = merge_shards(dir, 2, rules);
  // Survivors of f1: r0 (0.10), r2 (0.30), r3 (0.20), r4 (0.25): k = 2 -> cutoff 0.25.
  EXPECT_EQ(read_file(dir.output()), "r2\nr4\n");
  EXPECT_FLOAT_EQ(static_cast<float>(result.filters[1].effective_threshold), 0.25f);
  EXPECT_EQ(result.filters[1].rows_in, 4);
  EXPECT_EQ(result.filters[1].kept, 2);
}

TEST(Merge, UnfinishedShardIsAnError) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  write_shard(dir, 0, {"a"}, {0.5f});
  EXPECT_THROW(merge_shards(dir, 2, {{"f", 0.1, std::nullopt}}), std::runtime_error);
}

}  // namespace
}  // namespace clipshard

namespace clipshard {
namespace {

TEST(Merge, StepFilesHoldTheRowsAfterEachStep) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  // Pipeline: evaluator (adds "a"), filter (threshold 0.5), evaluator (adds "b").
  write_shard(dir, 0, {R"({"x":1,"a":0.1,"b":0.2})", R"({"x":2,"a":0.3,"b":0.4})"}, {0.9f, 0.1f});
  std::vector<StepOutput> steps = {{tmp.path() / "c" / "p_step1.jsonl", 0, {"b"}},
                                   {tmp.path() / "c" / "p_step2.jsonl", 1, {"b"}},
                                   {tmp.path() / "c" / "p_step3.jsonl", 1, {}}};
  merge_shards(dir, 1, {{"f", 0.5, std::nullopt}}, steps);
  EXPECT_EQ(read_file(steps[0].path), "{\"x\":1,\"a\":0.1}\n{\"x\":2,\"a\":0.3}\n");
  EXPECT_EQ(read_file(steps[1].path), "{\"x\":1,\"a\":0.1}\n");
  EXPECT_EQ(read_file(steps[2].path), read_file(dir.output()));
}

}  // namespace
}  // namespace clipshard
