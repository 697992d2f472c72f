#include "driver/export.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <vector>

#include "shard/atomic_file.h"
#include "shard/cache/embedding_cache_reader.h"
#include "shard/cache/half_float.h"
#include "shard/keep_rule.h"
#include "shard/npy_writer.h"
#include "shard/row_keys.h"
#include "shard/run_directory.h"
#include "worker/operator_spec.h"

namespace clipshard {

namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) {
  const auto j = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw std::runtime_error(path.string() + " is not a JSON object (damaged?)");
  return j;
}

// One pipeline step as the run's last merge saw it (summary.json "operators").
struct Step {
  std::string name;
};

// What the export needs to know about the run, checked before anything is written.
struct RunInfo {
  std::vector<Step> steps;
  // The filters' cutoffs as the merge applied them (keep_rule.h), in pipeline order: one per
  // filter, one sim per filter in each row of the sims parts.
  std::vector<double> cutoffs;
  int64_t shard_count = 0;
};

RunInfo check_run(const fs::path& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    throw std::runtime_error(
        "no run directory " + run_dir.string() +
        (fs::exists(run_dir, ec) ? " (not a directory)" : " (it does not exist)"));
  const fs::path state_path = run_dir / "state.json";
  if (!fs::exists(state_path))
    throw std::runtime_error(run_dir.string() +
                             " is not a clipshard run directory (it has no state.json)");
  const nlohmann::json state = read_json(state_path);
  if (state.value("format", "") != "clipshard-run-state")
    throw std::runtime_error(state_path.string() + " is not a clipshard run state");
  const fs::path summary_path = run_dir / "summary.json";
  const auto not_finished = [&](const std::string& why) {
    return std::runtime_error("the run in " + run_dir.string() + " is not finished (" + why +
                              "): run the same `clipshard run` command again to finish it "
                              "(`clipshard status " +
                              run_dir.string() + "` shows its progress)");
  };
  if (!fs::exists(summary_path)) throw not_finished("no summary.json");
  const nlohmann::json summary = read_json(summary_path);
  if (summary.value("format", "") != "clipshard-summary" ||
      summary.value("status", "") != "finished")
    throw not_finished(summary_path.string() + " does not say finished");
  RunInfo info;
  info.shard_count = state.value("shard_count", int64_t{-1});
  if (info.shard_count < 0) throw std::runtime_error(state_path.string() + " has no shard_count");
  const RunDirectory dir(run_dir);
  for (int64_t s = 0; s < info.shard_count; ++s)
    if (!dir.shard_done(s)) throw not_finished("shard " + std::to_string(s) + " is not done");
  if (!fs::exists(dir.output())) throw not_finished("no output.jsonl");
  const auto& cache = summary.value("embedding_cache", nlohmann::json::object());
  if (cache.is_object() && cache.value("enabled", true) == false)
    throw std::runtime_error("the run in " + run_dir.string() +
                             " kept no embeddings (embedding_cache.enabled was false); run it "
                             "again with the cache enabled to export its embeddings");
  const auto ops = summary.value("operators", nlohmann::json::array());
  if (!ops.is_array() || ops.empty())
    throw std::runtime_error(summary_path.string() + " lists no operators");
  for (const auto& o : ops) {
    Step step;
    step.name = o.value("operator", "");
    bool is_filter = false;
    try {
      is_filter = parse_operator_name(step.name) == OperatorKind::kClipFilter;
    } catch (const std::invalid_argument&) {
      throw std::runtime_error(summary_path.string() + ": unknown operator \"" + step.name + "\"");
    }
    if (is_filter) {
      try {
        info.cutoffs.push_back(cutoff_from_json(o.value("effective_threshold", nlohmann::json())));
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(summary_path.string() + ": operator \"" + step.name +
                                 "\": " + e.what());
      }
    }
    info.steps.push_back(step);
  }
  return info;
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot sync " + path.string());
  }
  ::close(fd);
}

// The temporary directory of an export: removed (with everything in it) unless released.
class TempDir {
 public:
  explicit TempDir(fs::path path) : path_(std::move(path)) {
    std::error_code ec;
    fs::remove_all(path_, ec);  // a leftover of a killed export by a process with our pid
    if (!fs::create_directories(path_, ec) || ec)
      throw std::runtime_error("cannot create " + path_.string() + ": " + ec.message());
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

// The N files of the export: img_emb_N.npy, text_emb_N.npy, metadata_N.jsonl, cut every
// rows_per_file rows. Files are created with their first row.
class ChunkWriter {
 public:
  ChunkWriter(const fs::path& root, const ExportOptions& options) : root_(root), options_(options) {
    if (options.image) fs::create_directories(root / "img_emb");
    if (options.text) fs::create_directories(root / "text_emb");
    fs::create_directories(root / "metadata");
  }

  // Appends one row: `image`/`text` are dim floats (ignored for a folder not written).
  void add(const float* image, const float* text, int dim, const std::string& metadata) {
    if (!metadata_) open(dim);
    if (options_.image) append(*image_, image, dim);
    if (options_.text) append(*text_, text, dim);
    metadata_->write(metadata);
    metadata_->write("\n", 1);
    ++rows_;
    if (++rows_in_file_ == options_.rows_per_file) close();
  }

  // Completes the last file.
  void finish() {
    if (metadata_) close();
  }
  int64_t files() const { return files_; }
  int64_t rows() const { return rows_; }

 private:
  void open(int dim) {
    const std::string n = std::to_string(files_);
    const NpyDType dtype = options_.fp16 ? NpyDType::kFloat16 : NpyDType::kFloat32;
    if (options_.image)
      image_ =
          std::make_unique<NpyWriter>(root_ / "img_emb" / ("img_emb_" + n + ".npy"), dim, dtype);
    if (options_.text)
      text_ =
          std::make_unique<NpyWriter>(root_ / "text_emb" / ("text_emb_" + n + ".npy"), dim, dtype);
    metadata_ = std::make_unique<AtomicFile>(root_ / "metadata" / ("metadata_" + n + ".jsonl"));
    rows_in_file_ = 0;
  }
  void append(NpyWriter& writer, const float* values, int dim) {
    if (options_.fp16) {
      halves_.resize(static_cast<size_t>(dim));
      floats_to_halves(values, halves_.data(), halves_.size());
      writer.append(halves_.data(), 1);
    } else {
      writer.append(values, 1);
    }
  }
  void close() {
    if (image_) image_->finish();
    if (text_) text_->finish();
    metadata_->commit();
    image_.reset();
    text_.reset();
    metadata_.reset();
    ++files_;
  }

  fs::path root_;
  ExportOptions options_;
  std::unique_ptr<NpyWriter> image_, text_;
  std::unique_ptr<AtomicFile> metadata_;
  std::vector<uint16_t> halves_;
  int64_t rows_in_file_ = 0, rows_ = 0, files_ = 0;
};

// Removes what killed exports to `to` left next to it: "<to>.tmp-PID" and "<to>.old-PID" whose
// process no longer exists (a live one may be another export running now).
void remove_stale_leftovers(const fs::path& to) {
  std::error_code ec;
  const std::string name = to.filename().string();
  for (const auto& entry : fs::directory_iterator(to.parent_path(), ec)) {
    const std::string n = entry.path().filename().string();
    for (const std::string tag : {".tmp-", ".old-"}) {
      const std::string prefix = name + tag;
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
          n.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
        continue;
      const long pid = std::stol(n.substr(prefix.size()));
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        fs::remove_all(entry.path(), ec);
    }
  }
}

// True when `dir` exists and holds something.
bool non_empty_directory(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) != fs::directory_iterator();
}

// Puts the finished temporary directory at `to`: a plain rename when `to` does not exist or is an
// empty directory (rename(2) replaces an empty directory atomically); an earlier export (force) is
// moved aside first and deleted after.
void install_export(TempDir& temp, const fs::path& to) {
  std::error_code ec;
  fs::path old;
  if (non_empty_directory(to)) {
    old = to;
    old += ".old-" + std::to_string(::getpid());
    fs::remove_all(old, ec);
    fs::rename(to, old, ec);
    if (ec)
      throw std::runtime_error("cannot move the earlier export " + to.string() +
                               " aside: " + ec.message());
  }
  fs::rename(temp.path(), to, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, to, ec);
    throw std::runtime_error("cannot rename " + temp.path().string() + " to " + to.string() + ": " +
                             ec.message());
  }
  temp.release();
  fsync_path(to.parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace

ExportResult export_run(const fs::path& run_dir, const ExportOptions& options) {
  if (!options.image && !options.text)
    throw std::invalid_argument(
        "nothing to export: --image-only and --text-only exclude each other");
  if (options.rows_per_file < 1) throw std::invalid_argument("--rows-per-file must be at least 1");
  if (options.to.empty()) throw std::invalid_argument("export needs --to DIR");
  const RunInfo info = check_run(run_dir);
  // Held while the parts are read, so that no run rewrites them meanwhile. A run directory that
  // cannot take a lock file (read-only) is read without.
  std::optional<RunLock> lock;
  try {
    lock.emplace(run_dir / "run.lock");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("another clipshard run", 0) == 0) throw;
  }
  const int op = options.op;
  if (op < 0 || op >= static_cast<int>(info.steps.size()))
    throw std::invalid_argument("--op " + std::to_string(op) + ": the pipeline has " +
                                std::to_string(info.steps.size()) + " step(s), 0 to " +
                                std::to_string(info.steps.size() - 1));

  // The destination: checked now (before the long part), and again when it is installed.
  fs::path to = fs::absolute(options.to).lexically_normal();
  if (!to.has_filename()) to = to.parent_path();
  std::error_code ec;
  if (fs::exists(to, ec) && !fs::is_directory(to, ec))
    throw std::runtime_error(to.string() + " exists and is not a directory");
  if (non_empty_directory(to)) {
    if (!options.force)
      throw std::runtime_error(to.string() +
                               " exists and is not empty; choose another --to, or add --force to "
                               "replace an earlier export");
    if (!fs::exists(to / "export.json"))
      throw std::runtime_error(to.string() +
                               " is not an earlier clipshard export (no export.json): --force "
                               "only replaces those; choose another --to");
  }
  fs::create_directories(to.parent_path(), ec);
  remove_stale_leftovers(to);
  fs::path temp_path = to;
  temp_path += ".tmp-" + std::to_string(::getpid());
  TempDir temp(temp_path);

  const RunDirectory dir(run_dir);
  ChunkWriter chunks(temp.path(), options);
  ExportResult result;
  result.operator_name = info.steps[op].name;
  std::optional<RowKeyTables> tables;
  bool lossy = false;

  std::ifstream output(dir.output(), std::ios::binary);
  if (!output) throw std::runtime_error("cannot read " + dir.output().string());
  std::string line, merged;
  std::vector<RowKeys> keys;
  std::vector<float> sims(info.cutoffs.size()), image, text;
  for (int64_t s = 0; s < info.shard_count; ++s) {
    const ShardPartPaths parts = dir.shard_parts(s);
    const fs::path keys_path = row_keys_path(run_dir, s);
    if (!fs::exists(keys_path))
      throw std::runtime_error(
          "the run has no row keys part " + keys_path.string() +
          " (written by clipshard since export exists, with the embedding cache on): run it again "
          "with --restart; embeddings.h5 is reused, so nothing is inferred again");
    RowKeysReader row_keys(keys_path);
    if (row_keys.operators().size() != info.steps.size())
      throw std::runtime_error(keys_path.string() + " has " +
                               std::to_string(row_keys.operators().size()) +
                               " operators, summary.json " + std::to_string(info.steps.size()));
    const RowKeyTables& t = row_keys.operators()[op];
    if (!tables) {
      tables = t;
    } else if (t.image_model_id != tables->image_model_id ||
               t.image_pipeline != tables->image_pipeline ||
               t.text_model_id != tables->text_model_id ||
               t.text_pipeline != tables->text_pipeline) {
      throw std::runtime_error(keys_path.string() + ": operator " + std::to_string(op) +
                               " used other cache tables than in the first shard");
    }
    const CacheTable image_table{t.image_model_id, "image", t.image_pipeline};
    const CacheTable text_table{t.text_model_id, "text", t.text_pipeline};
    std::unique_ptr<EmbeddingCacheReader> cache;  // opened for the shard's first exported row
    std::ifstream rows(parts.output, std::ios::binary);
    if (!rows) throw std::runtime_error("cannot read shard part " + parts.output.string());
    std::ifstream sims_in(parts.sims, std::ios::binary);
    if (!info.cutoffs.empty() && !sims_in)
      throw std::runtime_error("cannot read shard part " + parts.sims.string());
    while (std::getline(rows, line)) {
      if (!row_keys.next(&keys))
        throw std::runtime_error(keys_path.string() + " has fewer rows than " +
                                 parts.output.string());
      if (!info.cutoffs.empty()) {
        if (!sims_in.read(reinterpret_cast<char*>(sims.data()), sims.size() * sizeof(float)))
          throw std::runtime_error(parts.sims.string() + " has fewer rows than " +
                                   parts.output.string());
        // The merge's own rule: the row is in output.jsonl when every filter keeps it.
        if (first_dropping_filter(sims.data(), info.cutoffs.data(), sims.size()) < sims.size())
          continue;
      }
      if (!std::getline(output, merged) || merged != line)
        throw std::runtime_error(dir.output().string() + " does not match the parts of shard " +
                                 std::to_string(s) +
                                 " (changed after the run's merge?): run the same `clipshard "
                                 "run` command again to merge it afresh");
      const RowKeys& k = keys[op];
      if (!has_embeddings(k)) {
        ++result.skipped;
        continue;
      }
      if (!cache) {
        if (!fs::exists(parts.embeddings))
          throw std::runtime_error("missing embedding part " + parts.embeddings.string());
        cache = std::make_unique<EmbeddingCacheReader>(parts.embeddings);
        const int dim = cache->dim(image_table);
        if (dim <= 0 || cache->dim(text_table) != dim)
          throw std::runtime_error(parts.embeddings.string() + " lacks the tables " +
                                   image_table.to_string() + " / " + text_table.to_string() +
                                   " of operator " + std::to_string(op) + " (damaged part?)");
        if (result.dim != 0 && dim != result.dim)
          throw std::runtime_error(parts.embeddings.string() + ": embedding width " +
                                   std::to_string(dim) + ", earlier shards " +
                                   std::to_string(result.dim));
        result.dim = dim;
        lossy = lossy || cache->lossy(image_table) || cache->lossy(text_table);
        image.resize(dim);
        text.resize(dim);
      }
      const auto missing = [&](const char* kind) {
        return std::runtime_error(parts.embeddings.string() + " lacks the " + kind +
                                  " embedding of a row of " + parts.output.string() +
                                  " (damaged part?)");
      };
      if (options.image &&
          !cache->lookup(image_table, ContentKey{k[0], k[1]}, image.data(), result.dim))
        throw missing("image");
      if (options.text &&
          !cache->lookup(text_table, ContentKey{k[2], k[3]}, text.data(), result.dim))
        throw missing("text");
      chunks.add(image.data(), text.data(), result.dim, line);
    }
    if (row_keys.next(&keys))
      throw std::runtime_error(keys_path.string() + " has more rows than " + parts.output.string());
    if (!info.cutoffs.empty() && sims_in.peek() != std::char_traits<char>::eof())
      throw std::runtime_error(parts.sims.string() + " has more rows than " +
                               parts.output.string());
  }
  if (std::getline(output, merged))
    throw std::runtime_error(dir.output().string() +
                             " has more rows than the parts (changed after the run's merge?)");
  chunks.finish();
  result.rows = chunks.rows();
  result.files = chunks.files();

  nlohmann::ordered_json manifest = {{"format", "clipshard-export"},
                                     {"version", 1},
                                     {"run_dir", fs::absolute(run_dir).lexically_normal().string()},
                                     {"operator_index", op},
                                     {"operator", result.operator_name},
                                     {"image_table",
                                      {{"model_id", tables ? tables->image_model_id : ""},
                                       {"pipeline", tables ? tables->image_pipeline : ""}}},
                                     {"text_table",
                                      {{"model_id", tables ? tables->text_model_id : ""},
                                       {"pipeline", tables ? tables->text_pipeline : ""}}},
                                     {"dtype", options.fp16 ? "float16" : "float32"},
                                     {"cache_dtype", lossy ? "float16" : "float32"},
                                     {"dim", result.dim},
                                     {"rows", result.rows},
                                     {"rows_without_embeddings", result.skipped},
                                     {"rows_per_file", options.rows_per_file},
                                     {"files", result.files},
                                     {"img_emb", options.image},
                                     {"text_emb", options.text}};
  write_file_atomically(temp.path() / "export.json", manifest.dump(2) + "\n");
  for (const char* sub : {"img_emb", "text_emb", "metadata"})
    if (fs::exists(temp.path() / sub)) fsync_path(temp.path() / sub);
  fsync_path(temp.path());
  if (non_empty_directory(to) && !(options.force && fs::exists(to / "export.json")))
    throw std::runtime_error(to.string() + " was filled while the export ran; not replaced");
  install_export(temp, to);
  return result;
}

}  // namespace clipshard
