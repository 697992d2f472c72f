// The runtime without mpirun: the driver and N worker threads over InProcessNetwork, with a
// processor that runs no model. Proves scheduling, resume and merge.
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/test_paths.h"
#include "driver/job.h"
#include "driver/scheduler.h"
#include "driver/signals.h"
#include "driver/worker_loop.h"
#include "shard/atomic_file.h"
#include "worker/pass_through_processor.h"

namespace clipshard {
namespace {

// A manifest with rows, blank lines and broken lines.
std::filesystem::path write_manifest(const std::filesystem::path& dir, int lines) {
  const auto path = dir / "manifest.jsonl";
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < lines; ++i) {
    if (i % 17 == 5)
      out << "{broken json\n";
    else if (i % 23 == 7)
      out << "\n";
    else
      out << "{\"id\":" << i << ",\"caption\":\"row " << i << "\"}\n";
  }
  return path;
}

RunConfig config_for(const std::filesystem::path& manifest, const std::filesystem::path& out,
                     int64_t lines_per_shard) {
  RunConfig c;
  c.inputs = {manifest.string()};
  c.output_dir = out.string();
  c.lines_per_shard = lines_per_shard;
  c.progress_interval_s = 0;
  return c;
}

ProcessorFactory pass_through(PassThroughOptions options = {}) {
  return [options](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<PassThroughProcessor>(options);
  };
}

std::string run_and_read(const RunConfig& c, int workers, const ProcessorFactory& factory) {
  JobOptions options;
  options.in_process_workers = workers;
  std::ostringstream log;
  options.log = &log;
  EXPECT_EQ(run_job_in_process(c, options, factory), kExitOk) << log.str();
  return read_file(std::filesystem::path(c.output_dir) / "output.jsonl");
}

TEST(Runtime, SameOutputForOneToFourWorkers) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 500);
  const std::string one =
      run_and_read(config_for(manifest, tmp.path() / "w1", 37), 1, pass_through());
  EXPECT_NE(one.find("\"id\":0,"), std::string::npos);
  for (int workers : {2, 3, 4}) {
    const auto dir = tmp.path() / ("w" + std::to_string(workers));
    EXPECT_EQ(run_and_read(config_for(manifest, dir, 37), workers, pass_through()), one)
        << workers << " workers";
    EXPECT_EQ(read_file(dir / "errors.jsonl"), read_file(tmp.path() / "w1" / "errors.jsonl"));
  }
  // Every line accounted for: rows in the output, broken lines in errors, blank lines nowhere.
  int rows = 0, errors = 0;
  std::istringstream a(one), b(read_file(tmp.path() / "w1" / "errors.jsonl"));
  for (std::string l; std::getline(a, l);) ++rows;
  for (std::string l; std::getline(b, l);) ++errors;
  int blank = 0, broken = 0;
  for (int i = 0; i < 500; ++i) {
    if (i % 17 == 5)
      ++broken;
    else if (i % 23 == 7)
      ++blank;
  }
  EXPECT_EQ(errors, broken);
  EXPECT_EQ(rows, 500 - broken - blank);
  const auto summary = nlohmann::json::parse(read_file(tmp.path() / "w1" / "summary.json"));
  EXPECT_EQ(summary["rows_out"], rows);
  EXPECT_EQ(summary["errors_by_reason"]["malformed_json"], broken);
}

TEST(Runtime, FastWorkersTakeMoreShards) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 400);
  const ShardPlan plan = plan_shards({manifest}, 10);
  std::vector<int64_t> todo;
  for (const auto& s : plan.shards) todo.push_back(s.id);
  RunDirectory dir(tmp.path() / "run");
  InProcessNetwork net(3);
  std::atomic<bool> stop{false};
  PassThroughProcessor slow({1, 2000, 0}), fast({1, 0, 0});
  std::thread t1([&] { run_worker_loop(net.endpoint(1), 0, slow, dir, stop); });
  std::thread t2([&] { run_worker_loop(net.endpoint(2), 0, fast, dir, stop); });
  const auto result =
      run_scheduler(net.endpoint(0), plan, todo, {1, 2}, {0, 60, nullptr, nullptr}, stop);
  t1.join();
  t2.join();
  EXPECT_TRUE(result.complete);
  EXPECT_EQ(result.shards_finished, 40);
  EXPECT_GT(result.shards_per_rank.at(2), result.shards_per_rank.at(1));
}

TEST(Runtime, InterruptThenResumeGivesTheUninterruptedOutput) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 600);
  const std::string reference =
      run_and_read(config_for(manifest, tmp.path() / "ref", 25), 2, pass_through());

  const RunConfig c = config_for(manifest, tmp.path() / "run", 25);
  JobOptions options;
  options.in_process_workers = 3;
  std::ostringstream log;
  options.log = &log;
  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    set_stop_requested(true);  // as SIGTERM/SIGUSR1 would
  });
  const int status = run_job_in_process(c, options, pass_through({1, 5000, 0}));
  stopper.join();
  ASSERT_EQ(status, kExitInterrupted) << log.str();
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "run" / "output.jsonl"));
  const auto partial = run_status(c.output_dir);
  EXPECT_EQ(partial["state"], "partial");
  EXPECT_GT(partial["shards_done"].get<int>(), 0);
  EXPECT_LT(partial["shards_done"].get<int>(), 24);

  log.str("");
  ASSERT_EQ(run_job_in_process(c, options, pass_through()), kExitOk) << log.str();
  EXPECT_NE(log.str().find("resuming"), std::string::npos);
  EXPECT_EQ(read_file(tmp.path() / "run" / "output.jsonl"), reference);
  const auto summary = nlohmann::json::parse(read_file(tmp.path() / "run" / "summary.json"));
  EXPECT_GT(summary["shards"]["finished_earlier"].get<int>(), 0);
  EXPECT_EQ(run_status(c.output_dir)["state"], "finished");
}

class FailingProcessor : public ShardProcessor {
 public:
  ShardOutcome process(const ShardTask& task, const RunDirectory&, int,
                       const std::atomic<bool>& stop, const ShardProgress&) override {
    if (task.shard.id == 2) throw std::runtime_error("disk on fire");
    if (hang_ && task.shard.id == 1) {
      while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return ShardOutcome::kInterrupted;
    }
    return ShardOutcome::kInterrupted;
  }
  bool hang_ = false;
};

TEST(Runtime, WorkerFailureNamesRankAndShard) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 100);
  RunConfig c = config_for(manifest, tmp.path() / "run", 10);
  auto factory = [](const RunConfig&, const WorkerPlacement&) {
    return std::make_unique<FailingProcessor>();
  };
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  // Finish the run, then forget shard 2 so that only it is redone, by the failing processor.
  ASSERT_EQ(
      run_job_in_process(c, options,
                         [](const RunConfig&, const WorkerPlacement&) {
                           return std::make_unique<PassThroughProcessor>(PassThroughOptions{});
                         }),
      kExitOk);
  std::filesystem::remove(RunDirectory(c.output_dir).shard_parts(2).done);
  try {
    run_job_in_process(c, options, factory);
    FAIL() << "no failure reported";
  } catch (const WorkerFailure& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("worker rank 1"), std::string::npos) << what;
    EXPECT_NE(what.find("shard 2"), std::string::npos) << what;
    EXPECT_NE(what.find("disk on fire"), std::string::npos) << what;
  }
}

TEST(Runtime, SilentWorkerTimesOut) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 30);
  RunConfig c = config_for(manifest, tmp.path() / "run", 10);
  c.worker_timeout_s = 1.0;
  auto factory = [](const RunConfig&, const WorkerPlacement&) {
    auto p = std::make_unique<FailingProcessor>();
    p->hang_ = true;
    return p;
  };
  // Shard 0 must be done already so that the hanging worker gets shard 1 first.
  std::filesystem::create_directories(tmp.path() / "run");
  JobOptions options;
  std::ostringstream log;
  options.log = &log;
  ASSERT_EQ(run_job_in_process(c, options, pass_through()), kExitOk);
  std::filesystem::remove(RunDirectory(c.output_dir).shard_parts(1).done);
  try {
    run_job_in_process(c, options, factory);
    FAIL() << "hang not detected";
  } catch (const WorkerFailure& e) {
    EXPECT_NE(std::string(e.what()).find("sent nothing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shard 1"), std::string::npos) << e.what();
  }
  set_stop_requested(false);
}

TEST(Runtime, SecondRunOnTheSameDirectoryIsRefused) {
  testing::TempDir tmp;
  const auto manifest = write_manifest(tmp.path(), 30);
  const RunConfig c = config_for(manifest, tmp.path() / "run", 10);
  RunDirectory dir(c.output_dir);
  RunLock held(dir.lock());
  JobOptions options;
  try {
    run_job_in_process(c, options, pass_through());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another clipshard run"), std::string::npos);
  }
}

}  // namespace
}  // namespace clipshard
