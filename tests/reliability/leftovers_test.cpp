// Reliability: what a killed or signalled run leaves behind. Temporary files of a killed process are
// removed by the next run; a SIGTERM that arrives before the job has started (while the config is
// read or the models load) still ends it with 75 and a resumable directory.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/signals.h"
#include "shard/atomic_file.h"
#include "shard/run_directory.h"
#include "worker/pass_through_processor.h"

namespace clipshard {
namespace {

namespace fs = std::filesystem;

int64_t count_lines(const fs::path& path) {
  const std::string text = read_file(path);
  return std::count(text.begin(), text.end(), '\n');
}

TEST(Leftovers, StaleTempFilesAreRemovedAndNothingElse) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.path() / "run");
  const std::vector<std::string> stale = {"output.jsonl.tmp-123", "embeddings.h5.tmp",
                                          "parts/shard-00000003.out.jsonl.tmp-99",
                                          "parts/shard-00000003.emb.h5.tmp"};
  const std::vector<std::string> kept = {"output.jsonl",
                                         "state.json",
                                         "run.lock",
                                         "parts/shard-00000001.done.json",
                                         "parts/shard-00000001.out.jsonl",
                                         "notes.tmp-abc",
                                         "parts/x.tmp-"};
  for (const auto& f : stale) std::ofstream(dir.root() / f) << "x";
  for (const auto& f : kept) std::ofstream(dir.root() / f) << "x";
  fs::create_directories(dir.root() / "folder.tmp");  // only files are removed
  EXPECT_EQ(dir.remove_stale_temp_files(), static_cast<int64_t>(stale.size()));
  for (const auto& f : stale) EXPECT_FALSE(fs::exists(dir.root() / f)) << f;
  for (const auto& f : kept) EXPECT_TRUE(fs::exists(dir.root() / f)) << f;
  EXPECT_TRUE(fs::is_directory(dir.root() / "folder.tmp"));
}

TEST(Leftovers, ARunRemovesWhatAKilledRunLeft) {
  testing::TempDir tmp;
  const fs::path manifest = tmp.path() / "m.jsonl";
  {
    std::ofstream out(manifest);
    for (int i = 0; i < 40; ++i) out << "{\"id\": " << i << "}\n";
  }
  RunConfig c;
  c.inputs = {manifest.string()};
  c.output_dir = (tmp.path() / "run").string();
  c.lines_per_shard = 8;
  c.progress_interval_s = 0;
  RunDirectory dir(c.output_dir);
  // As a SIGKILL in the middle of a shard and of the merge would leave them.
  std::ofstream(dir.parts() / "shard-00000002.out.jsonl.tmp-4242") << "{\"id\": 16}\n{\"id";
  std::ofstream(dir.root() / "output.jsonl.tmp-4242") << "{\"id\": 0}\n";
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  auto factory = [](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<PassThroughProcessor>();
  };
  ASSERT_EQ(run_job_in_process(c, options, factory), kExitOk) << log.str();
  for (const auto& e : fs::recursive_directory_iterator(dir.root()))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_EQ(count_lines(dir.output()), 40);
}

TEST(Leftovers, SigtermBeforeTheJobStartsEndsItWith75) {
  testing::TempDir tmp;
  const fs::path manifest = tmp.path() / "m.jsonl";
  {
    std::ofstream out(manifest);
    for (int i = 0; i < 300; ++i) out << "{\"id\": " << i << "}\n";
  }
  RunConfig c;
  c.inputs = {manifest.string()};
  c.output_dir = (tmp.path() / "run").string();
  c.lines_per_shard = 10;
  c.progress_interval_s = 0;
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  auto factory = [](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<PassThroughProcessor>(PassThroughOptions{4, 100, 0});
  };
  install_stop_signal_handlers();  // as `clipshard run` does first thing
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_EQ(stop_signal(), SIGTERM);
  EXPECT_EQ(run_job_in_process(c, options, factory), kExitInterrupted) << log.str();
  EXPECT_NE(log.str().find("run the same command again to resume"), std::string::npos);
  EXPECT_FALSE(fs::exists(fs::path(c.output_dir) / "output.jsonl"));
  set_stop_requested(false);
  EXPECT_EQ(stop_signal(), 0);
  ASSERT_EQ(run_job_in_process(c, options, factory), kExitOk) << log.str();
  EXPECT_EQ(count_lines(fs::path(c.output_dir) / "output.jsonl"), 300);
}

}  // namespace
}  // namespace clipshard
