// What a failed or stopped run leaves behind for the next command, and `clipshard status` on a
// directory that is not a run directory.
#include <fstream>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/run_directory.h"
#include "worker/pass_through_processor.h"

namespace clipshard {
namespace {

std::filesystem::path write_manifest(const std::filesystem::path& dir, int lines) {
  const auto path = dir / "manifest.jsonl";
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < lines; ++i) out << "{\"id\":" << i << ",\"caption\":\"row " << i << "\"}\n";
  return path;
}

RunConfig config_for(const std::filesystem::path& manifest, const std::filesystem::path& out) {
  RunConfig c;
  c.inputs = {manifest.string()};
  c.output_dir = out.string();
  c.lines_per_shard = 10;
  c.progress_interval_s = 0;
  return c;
}

// Fails on shard `fail_on` (after finishing the shards before it, with one worker).
class FailOnShard : public ShardProcessor {
 public:
  explicit FailOnShard(int64_t fail_on) : fail_on_(fail_on) {}
  ShardOutcome process(const ShardTask& task, const RunDirectory& dir, int rank,
                       const std::atomic<bool>& stop, const ShardProgress& progress) override {
    if (task.shard.id == fail_on_) throw std::runtime_error("model exploded");
    return pass_.process(task, dir, rank, stop, progress);
  }

 private:
  int64_t fail_on_;
  PassThroughProcessor pass_;
};

ProcessorFactory fail_on(int64_t shard) {
  return [shard](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<FailOnShard>(shard);
  };
}

ProcessorFactory pass_through() {
  return [](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<PassThroughProcessor>();
  };
}

struct Quiet {
  std::ostringstream log;
  JobOptions options;
  Quiet() { options.log = &log; }
};

TEST(RerunAfterFailure, FailureOnTheFirstShardDoesNotBlockACorrectedCommand) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 30);
  RunConfig bad = config_for(manifest, tmp.path() / "run");
  Quiet q;
  EXPECT_THROW(run_job_in_process(bad, q.options, fail_on(0)), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "run" / "state.json"));

  RunConfig corrected = bad;
  corrected.processing.batch_size =
      bad.processing.batch_size + 1;  // another result fingerprint, as a new model_name
  ASSERT_EQ(run_job_in_process(corrected, q.options, pass_through()), kExitOk) << q.log.str();
  EXPECT_EQ(run_status(corrected.output_dir)["state"], "finished");
}

TEST(RerunAfterFailure, StateLeftByARunThatFinishedNoShardDoesNotBlock) {
  // A state.json with no finished shard (as a run killed or stopped before its first shard
  // leaves it): it protects nothing, so another config may start in the directory.
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 30);
  RunConfig first = config_for(manifest, tmp.path() / "run");
  Quiet q;
  ASSERT_EQ(run_job_in_process(first, q.options, pass_through()), kExitOk);
  const RunDirectory dir(first.output_dir);
  std::filesystem::remove_all(dir.parts());
  std::filesystem::create_directories(dir.parts());
  ASSERT_TRUE(std::filesystem::exists(dir.state()));
  RunConfig other = first;
  other.processing.batch_size = first.processing.batch_size + 1;
  EXPECT_EQ(run_job_in_process(other, q.options, pass_through()), kExitOk) << q.log.str();
}

TEST(RerunAfterFailure, FinishedShardsOfAnotherConfigAreStillRefused) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 30);
  RunConfig first = config_for(manifest, tmp.path() / "run");
  Quiet q;
  // Shard 0 finishes, shard 1 fails: shard 0's part belongs to `first`.
  EXPECT_THROW(run_job_in_process(first, q.options, fail_on(1)), std::runtime_error);
  ASSERT_TRUE(RunDirectory(first.output_dir).shard_done(0));
  ASSERT_TRUE(std::filesystem::exists(tmp.path() / "run" / "state.json"));
  RunConfig other = first;
  other.processing.batch_size = first.processing.batch_size + 1;
  try {
    run_job_in_process(other, q.options, pass_through());
    FAIL() << "a different config was accepted over finished shards";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("different config"), std::string::npos) << e.what();
  }
  // The original command resumes.
  EXPECT_EQ(run_job_in_process(first, q.options, pass_through()), kExitOk) << q.log.str();
  EXPECT_NE(q.log.str().find("resuming"), std::string::npos);
}

TEST(RunStatus, MissingDirectoryIsAnErrorAndNothingIsCreated) {
  testing::TempDir tmp;
  const auto missing = tmp.path() / "typo";
  try {
    run_status(missing.string());
    FAIL() << "status of a missing directory succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(missing));
  std::ofstream(tmp.path() / "file") << "x";
  EXPECT_THROW(run_status((tmp.path() / "file").string()), std::runtime_error);
}

TEST(RunStatus, DirectoryWithoutStateIsEmptyAndStaysUntouched) {
  testing::TempDir tmp;
  EXPECT_EQ(run_status(tmp.path().string())["state"], "empty");
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

}  // namespace
}  // namespace clipshard
