#include "driver/job.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "driver/model_identity.h"
#include "driver/mpi_transport.h"
#include "driver/scheduler.h"
#include "driver/signals.h"
#include "driver/summary.h"
#include "driver/worker_loop.h"
#include "models/clip/model_loader.h"
#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_merge.h"
#include "shard/merge.h"
#include "shard/part_format.h"
#include "shard/run_directory.h"
#include "shard/webdataset_output.h"

namespace clipshard {

namespace {

// True when parts/ holds a committed shard of any run (its *.done.json), whatever the plan.
bool has_finished_shard(const RunDirectory& dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir.parts(), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    constexpr std::string_view kDone = ".done.json";
    if (name.size() > kDone.size() &&
        name.compare(name.size() - kDone.size(), kDone.size(), kDone) == 0)
      return true;
  }
  return false;
}

// How to get real weights, for the message of a model that is not found (nothing is downloaded
// by clipshard, and the fixture models have random weights).
std::string real_weights_hint(const std::string& name) {
  // A Hugging Face hub id ("org/name") is what DataFlow-MM configs name; a path is not one.
  const auto slash = name.find('/');
  const bool hub_id = slash != std::string::npos && slash > 0 && slash + 1 < name.size() &&
                      name.find('/', slash + 1) == std::string::npos && name[0] != '.' &&
                      name[0] != '~';
  const std::string repo = hub_id ? name : "openai/clip-vit-base-patch32";
  const std::string dir = repo.substr(repo.find('/') + 1);
  return "To get real weights: on a machine with network access run `huggingface-cli download " +
         repo + " --local-dir " + dir + "` (LongCLIP: BeichenZhang/LongCLIP-L-336px), copy " + dir +
         "/ here and set model_name to its path, or put it under models_dir (docs/CONFIG.md, "
         "\"Models\").";
}

// --restart drops parts/, and with it the embeddings of the shards finished so far: they are merged
// into embeddings.h5 (the run's cache, which the restarted run reads) first, so that a restart
// after e.g. a batch_size change computes none of them again. A cache that cannot be merged
// (another model's dim under the same table, a damaged part) only costs recomputation: a warning,
// no failure.
void keep_embeddings_for_restart(const RunDirectory& dir, std::ostream& log) {
  std::vector<std::filesystem::path> parts;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir.parts(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".emb.h5") == 0)
      parts.push_back(entry.path());
  }
  if (parts.empty()) return;
  std::sort(parts.begin(), parts.end());  // shard order: the earliest shard's entry wins
  if (std::filesystem::exists(dir.embeddings(), ec)) parts.insert(parts.begin(), dir.embeddings());
  try {
    const auto stats = merge_embedding_caches(parts, dir.embeddings());
    log << "clipshard: --restart: kept " << stats.entries << " embeddings in "
        << dir.embeddings().string() << std::endl;
  } catch (const std::exception& e) {
    log << "clipshard: warning: --restart could not keep the embeddings of the discarded shards ("
        << e.what() << "); they will be computed again" << std::endl;
  }
}

// The driver's state for one run: plan, run directory (locked), shards still to do.
struct DriverSide {
  ShardPlan plan;
  std::unique_ptr<RunDirectory> dir;
  std::unique_ptr<RunLock> lock;
  std::vector<int64_t> todo;
  bool resumed = false;
  std::unique_ptr<ResolvedModels> models;  // the workers' kReady reports, checked
  // state.json's merge settings before this run: those output.jsonl was last merged with (or the
  // run was started with). A finished run rerun with other ones is a re-filter.
  nlohmann::json previous_merge_settings;
};

// The scheduler options of a run; workers' model reports go to d.models.
SchedulerOptions scheduler_options(const RunConfig& config, DriverSide& d, std::ostream& log) {
  SchedulerOptions sopts{config.progress_interval_s, config.worker_timeout_s, &log, nullptr};
  sopts.on_ready = [&d, &log](int rank, const std::string& text) {
    d.models->accept(rank, text, log);
  };
  return sopts;
}

DriverSide prepare_driver(const RunConfig& config, const JobOptions& options, std::ostream& log) {
  // Every model name must resolve before anything is planned or written (ModelError lists where
  // it looked); loading and checking the weights happens on the workers.
  for (const auto& op : config.pipeline) {
    try {
      resolve_model_path(op.model_name, config.models_dir);
    } catch (const ModelError& e) {
      throw ModelError(std::string(e.what()) + "\n" + real_weights_hint(op.model_name));
    }
  }
  DriverSide d;
  const auto inputs = expand_inputs(config.inputs);
  d.dir = std::make_unique<RunDirectory>(config.output_dir);
  d.lock = std::make_unique<RunLock>(d.dir->lock());
  d.dir->remove_stale_temp_files();  // left by a killed run; nothing writes here before we start
  d.plan = plan_shards(inputs, config.lines_per_shard);
  if (options.restart) {
    if (config.processing.cache.write) keep_embeddings_for_restart(*d.dir, log);
    d.dir->clear_for_restart();
  }
  // state.json protects finished shards from being mixed with those of another config or input.
  // With no finished shard in parts/ it protects nothing (a run that failed or was stopped before
  // its first shard): it is dropped so that a corrected command starts afresh instead of being
  // refused until --restart. embeddings.h5 is kept either way (it is a cache keyed by content).
  if (!has_finished_shard(*d.dir)) {
    std::error_code ec;
    std::filesystem::remove(d.dir->state(), ec);
  }
  const RunIdentity identity{result_fingerprint(config), manifest_fingerprints(d.plan),
                             config.lines_per_shard, static_cast<int64_t>(d.plan.shards.size()),
                             merge_settings(config)};
  d.resumed =
      check_or_write_state(*d.dir, identity, &d.previous_merge_settings) == StateCheck::kResume;
  for (const auto& s : d.plan.shards)
    if (!d.dir->shard_done(s.id)) d.todo.push_back(s.id);
  // With nothing left to compute, how the workers would run now does not matter.
  d.models = std::make_unique<ResolvedModels>(*d.dir, /*check=*/!d.todo.empty());
  log << "clipshard: " << d.plan.total_lines() << " lines/samples in " << d.plan.manifests.size()
      << " input(s), " << d.plan.shards.size() << " shards";
  if (d.resumed)
    log << "; resuming: " << d.plan.shards.size() - d.todo.size() << " shards already finished";
  if (d.resumed && d.todo.empty() && d.previous_merge_settings != merge_settings(config))
    log << "; only the filter settings changed: re-filtering the stored similarities (no image "
           "is read, no model loaded)";
  log << std::endl;
  return d;
}

// A job that fails before any shard is finished (a model that cannot be loaded, a worker that dies
// at once) forgets its state.json, so that a corrected config (another model_name, say) is a new
// run rather than "a different config" refused until --restart. Finished shards keep it.
void forget_unstarted_run(const DriverSide& d) noexcept {
  if (!d.dir || has_finished_shard(*d.dir)) return;
  std::error_code ec;
  std::filesystem::remove(d.dir->state(), ec);
}

int finish_driver(DriverSide& d, const RunConfig& config, const ScheduleResult& schedule,
                  std::ostream& log) {
  if (!schedule.complete) {
    const int64_t done = static_cast<int64_t>(d.plan.shards.size() - schedule.unfinished.size());
    log << "clipshard: stopped (signal " << stop_signal() << "): " << done << "/"
        << d.plan.shards.size() << " shards finished, " << schedule.unfinished.size()
        << " left; run the same command again to resume" << std::endl;
    return kExitInterrupted;
  }
  const nlohmann::json summary =
      merge_and_summarize(*d.dir, d.plan, config, schedule, d.models->summary(config.pipeline),
                          {d.previous_merge_settings, !d.todo.empty()});
  if (!config.webdataset_output.empty()) {
    // After the merge, from output.jsonl: a run killed here redoes the merge and these tars,
    // with the same bytes, when it is run again.
    std::vector<std::string> score_keys;
    for (const auto& op : config.pipeline)
      if (!op.is_filter()) score_keys.push_back(op.output_key);
    const int64_t samples =
        write_webdataset_outputs(d.plan, d.dir->output(), config.webdataset_output, score_keys);
    log << "clipshard: webdataset_output: " << samples << " samples written to "
        << config.webdataset_output << std::endl;
  }
  // Last: a run killed before this point re-merges with the same settings when rerun, and still
  // reports what it re-filtered from.
  record_merge_settings(*d.dir, merge_settings(config));
  log << "clipshard: finished: " << summary_line(summary) << std::endl;
  for (const auto& line : summary_operator_lines(summary))
    log << "clipshard:   " << line << std::endl;
  return kExitOk;
}

int in_process(const RunConfig& config, const JobOptions& options,
               const ProcessorFactory& factory) {
  std::ostream& log = options.log ? *options.log : std::cerr;
  // Forget a flag raised by hand (tests), keep one raised by a real signal (run_cli installs the
  // handlers first thing: a SIGTERM during startup still ends the run with 75).
  if (stop_signal() == 0) set_stop_requested(false);
  DriverSide d = prepare_driver(config, options, log);
  ScheduleResult schedule;
  if (!d.todo.empty()) {
    const int n = std::max(1, options.in_process_workers);
    // Built here, before any work, so that a model that cannot be loaded is reported directly.
    std::vector<std::unique_ptr<ShardProcessor>> processors;
    try {
      for (int w = 1; w <= n; ++w) processors.push_back(factory(config, {w, w - 1, n}));
    } catch (...) {
      forget_unstarted_run(d);
      throw;
    }
    InProcessNetwork network(n + 1);
    std::vector<std::thread> threads;
    for (int w = 1; w <= n; ++w) {
      threads.emplace_back([&, w] {
        run_worker_loop(network.endpoint(w), 0, *processors[w - 1], *d.dir, stop_requested());
      });
    }
    std::vector<int> workers;
    for (int w = 1; w <= n; ++w) workers.push_back(w);
    const SchedulerOptions sopts = scheduler_options(config, d, log);
    try {
      schedule =
          run_scheduler(network.endpoint(0), d.plan, d.todo, workers, sopts, stop_requested());
    } catch (...) {
      set_stop_requested(true);  // busy workers stop after their batch; idle ones get kNoMore
      for (int w = 1; w <= n; ++w)
        network.endpoint(0).send(w, {MessageType::kNoMore, 0, -1, 0, ""});
      for (auto& t : threads) t.join();
      forget_unstarted_run(d);  // e.g. the first shard failed: a corrected command is a new run
      throw;
    }
    for (auto& t : threads) t.join();
  } else {
    schedule.complete = true;
  }
  return finish_driver(d, config, schedule, log);
}

}  // namespace

int run_job_in_process(const RunConfig& config, const JobOptions& options,
                       const ProcessorFactory& factory) {
  install_stop_signal_handlers();
  return in_process(config, options, factory);
}

int run_job_mpi(const RunConfig& config, const JobOptions& options, int* argc, char*** argv,
                const ProcessorFactory& factory) {
  MpiSession mpi(argc, argv);
  install_stop_signal_handlers();
  if (mpi.size() == 1) {
    try {
      return in_process(config, options, factory);
    } catch (const std::exception& e) {
      std::cerr << "clipshard: error: " << e.what() << std::endl;
      return kExitError;
    }
  }
  std::ostream& log = options.log ? *options.log : std::cerr;
  auto transport = make_mpi_transport(mpi);
  if (mpi.rank() == 0) {
    DriverSide d;
    try {
      d = prepare_driver(config, options, log);
    } catch (const std::exception& e) {
      // Nothing started: release the workers and exit with the message.
      for (int w = 1; w < mpi.size(); ++w) transport->send(w, {MessageType::kNoMore, 0, -1, 0, ""});
      std::cerr << "clipshard: error: " << e.what() << std::endl;
      return kExitError;
    }
    std::vector<int> workers;
    for (int w = 1; w < mpi.size(); ++w) workers.push_back(w);
    try {
      const SchedulerOptions sopts = scheduler_options(config, d, log);
      const ScheduleResult schedule =
          run_scheduler(*transport, d.plan, d.todo, workers, sopts, stop_requested());
      return finish_driver(d, config, schedule, log);
    } catch (const std::exception& e) {
      forget_unstarted_run(d);
      mpi.abort(e.what(), kExitError);
    }
  }
  // Worker rank. The processor (which loads the models) is built when the first shard arrives:
  // a rerun with every shard finished (a re-filter) loads no model at all.
  try {
    std::unique_ptr<ShardProcessor> processor;
    auto get_processor = [&]() -> ShardProcessor& {
      if (!processor)
        processor = factory(config, {mpi.rank(), mpi.local_rank(), std::max(1, mpi.local_size())});
      return *processor;
    };
    RunDirectory dir(config.output_dir);
    switch (run_worker_loop(*transport, 0, get_processor, dir, stop_requested())) {
      case WorkerExit::kNoMoreWork:
        return kExitOk;
      case WorkerExit::kInterrupted:
        return kExitInterrupted;
      case WorkerExit::kFailed:
        break;
    }
    // The driver received the failure and aborts the job; wait for it.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  } catch (const std::exception& e) {
    transport->send(0, {MessageType::kFailed, 0, -1, 0, e.what()});
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

nlohmann::json run_status(const std::string& run_dir) {
  // Only looks: RunDirectory's constructor would create run_dir/parts, so it is built only once
  // the directory is known to be a run directory (state.json present).
  std::error_code ec;
  if (!std::filesystem::is_directory(run_dir, ec)) {
    throw std::runtime_error(
        "no run directory " + run_dir +
        (std::filesystem::exists(run_dir, ec) ? " (not a directory)" : " (it does not exist)"));
  }
  nlohmann::json status = {
      {"state", "empty"}, {"shards_total", 0}, {"shards_done", 0}, {"rows_done", 0}};
  if (!std::filesystem::exists(std::filesystem::path(run_dir) / "state.json")) return status;
  const RunDirectory dir(run_dir);
  const auto state = nlohmann::json::parse(read_file(dir.state()));
  const int64_t total = state.value("shard_count", int64_t{0});
  int64_t done = 0, rows = 0;
  for (int64_t s = 0; s < total; ++s) {
    if (!dir.shard_done(s)) continue;
    ++done;
    int rank = -1;
    rows += read_done_part(dir.shard_parts(s).done, &rank).rows;
  }
  status["shards_total"] = total;
  status["shards_done"] = done;
  status["rows_done"] = rows;
  status["state"] =
      done == total && std::filesystem::exists(dir.summary()) ? "finished" : "partial";
  return status;
}

}  // namespace clipshard
