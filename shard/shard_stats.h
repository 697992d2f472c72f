// ShardStats: one shard's statistics, typed, with the one serialiser of the done file
// (docs/FORMATS.md, "parts/"). The worker fills it, ShardPartWriter writes it as the done file,
// the merge reads the done files back and sums them for summary.json (its row and error counts,
// "embeddings", "timing.worker_seconds", and per rank "ranks").
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace clipshard {

struct ShardStats {
  int64_t lines = 0;        // lines (tar: samples) of the shard
  int64_t rows = 0;         // object rows (each in the output part)
  int64_t blank_lines = 0;  // empty or whitespace-only lines
  int64_t error_lines = 0;  // lines that are not a JSON object (an error record, no row)
  int64_t error_rows = 0;   // rows with an error record (scored 0)
  std::map<std::string, int64_t> errors;  // error records by reason (row_status.h's names)
  int64_t captions_truncated = 0;         // captions cut to the text tower's context length
  int64_t images_distinct = 0;            // distinct image files / tar members of the shard
  // Work on the pixels, to show that operators sharing an image share it: an image is decoded once
  // whatever the operators (images_decoded <= images_distinct: one whose embeddings all come from
  // the cache, or whose file cannot be read, is not; a corrupt one counts, it was tried), then
  // resized, cropped and normalised once per distinct preprocessing that needs it (ModelBank's
  // image spaces).
  int64_t images_decoded = 0;
  int64_t images_preprocessed = 0;
  struct Embeddings {
    int64_t image_computed = 0, image_reused = 0;  // reused: from the embedding cache
    int64_t text_computed = 0, text_reused = 0;
  } embeddings;
  struct Seconds {
    double decode_cpu = 0.0;   // reading + decoding + preprocessing, summed over decode threads
    double decode_wait = 0.0;  // time inference waited for the decode pool
    double model = 0.0;        // time in the towers
    double total = 0.0;        // the whole shard, wall clock
  } seconds;

  // Counts one error record of `reason`.
  void count_error(const std::string& reason) { ++errors[reason]; }
  // Adds every counter of `other` (sums over shards, for the summary).
  void add(const ShardStats& other);
};

// The done file's JSON (without "shard" and "rank", which ShardPartWriter adds):
// {"lines", "rows", "blank_lines", "error_lines", "error_rows", "errors": {reason: n},
//  "captions_truncated", "images": {"distinct", "decoded",
//  "preprocessed"}, "embeddings": {"image_computed", "image_reused",
//  "text_computed", "text_reused"}, "seconds": {"decode_cpu", "decode_wait", "model", "total"}}.
nlohmann::json shard_stats_to_json(const ShardStats& stats);

// The inverse, for a done file's JSON: "shard" and "rank" are skipped, a missing counter is 0 (a
// done file of an earlier clipshard lacks the newer ones). Throws std::runtime_error naming
// `source` for an unknown key or a value of the wrong type, so that writer and reader cannot drift
// apart unnoticed.
ShardStats shard_stats_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace clipshard
