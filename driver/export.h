// `clipshard export RUN_DIR --to DIR`: the embeddings of a finished run aligned to its output rows,
// in clip-retrieval's layout (docs/FORMATS.md, "Exported embeddings"):
//   DIR/img_emb/img_emb_N.npy      float32 (or float16) [rows, dim], L2-normalised
//   DIR/text_emb/text_emb_N.npy    the same rows' text embeddings
//   DIR/metadata/metadata_N.jsonl  the same rows' output.jsonl lines, same order
//   DIR/export.json                what was exported (run, operator, tables, rows, files)
// Row i of the three files N is one output row that has embeddings for the exported operator;
// concatenating the files in N order gives every such row of output.jsonl, in output order.
//
// Rows are linked to the content-keyed cache by the shards' row keys parts (shard/row_keys.h) and
// the embeddings are read from the shards' cache parts (parts/shard-N.emb.h5); everything is
// streamed shard by shard, so memory does not grow with the number of rows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace clipshard {

struct ExportOptions {
  std::filesystem::path to;         // the output directory DIR (required)
  int op = 0;                       // pipeline step (0-based) whose embeddings to export
  bool fp16 = false;                // write float16 instead of float32 .npy files
  bool image = true;                // write img_emb/
  bool text = true;                 // write text_emb/
  int64_t rows_per_file = 1000000;  // rows per N file (clip-retrieval's default)
  bool force = false;               // replace an existing earlier export at `to`
};

struct ExportResult {
  int64_t rows = 0;     // rows exported (output rows with embeddings)
  int64_t skipped = 0;  // output rows without embeddings (bad rows of the operator)
  int64_t files = 0;    // N files per folder
  int dim = 0;          // embedding width (0 when no row was exported)
  std::string operator_name;
};

// Writes the export of the finished run in `run_dir`. DIR appears complete or not at all: it is
// written as "DIR.tmp-PID" next to it and renamed at the end; on any error the temporary
// directory is removed and DIR is left as it was. Throws std::invalid_argument for bad options
// (no folder selected, rows_per_file < 1, op out of range) and std::runtime_error naming the file
// or directory when: run_dir is not a clipshard run directory, the run is not finished, a part is
// missing or damaged, output.jsonl does not match the parts, the run kept no embeddings
// (embedding_cache disabled, or a run written before row keys existed), DIR exists and is not
// empty (with `force`: unless it holds an earlier export, i.e. an export.json), or writing fails
// (e.g. a full disk).
ExportResult export_run(const std::filesystem::path& run_dir, const ExportOptions& options);

}  // namespace clipshard
