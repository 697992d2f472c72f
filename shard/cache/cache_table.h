// A table of the embedding cache: the embeddings of one model for one input kind and one
// preprocessing pipeline. Keys are unique within a table; the same key in two tables is two
// entries.
#pragma once

#include <string>
#include <tuple>

namespace clipshard {

struct CacheTable {
  std::string model_id;  // the model's identity, e.g. its weights' content fingerprint
  std::string kind;      // "image" or "text"
  std::string pipeline;  // image preprocessing ("hf224", "openai224", "longclip336") or
                         // tokenizer/context ("hf77", "longclip248")

  friend bool operator==(const CacheTable& a, const CacheTable& b) {
    return std::tie(a.model_id, a.kind, a.pipeline) == std::tie(b.model_id, b.kind, b.pipeline);
  }
  friend bool operator!=(const CacheTable& a, const CacheTable& b) { return !(a == b); }
  friend bool operator<(const CacheTable& a, const CacheTable& b) {
    return std::tie(a.model_id, a.kind, a.pipeline) < std::tie(b.model_id, b.kind, b.pipeline);
  }
  // "model_id/kind/pipeline", for messages.
  std::string to_string() const { return model_id + "/" + kind + "/" + pipeline; }
};

// What a table's embeddings were computed with, stored as attributes of its group so that a reader
// (h5py, another tool) can tell without clipshard's config. Not part of the table's identity: two
// runs that name the same weights differently (another path, another name) share a table, and the
// first writer's description is the one a merge keeps. Empty strings mean "not recorded".
struct TableDescription {
  std::string model_name;    // the model as the config gives it ("openai/clip-vit-base-patch32")
  std::string model_path;    // the weights file actually read
  std::string model_format;  // the checkpoint format ("huggingface-dir", "open_clip-dir", ...)
  std::string fingerprint;   // the weights' content fingerprint (the table's model_id today)
  std::string precision;     // what the model ran at: "fp32" | "fp16" | "bf16"
  int normalized = -1;       // 1: L2-normalised embeddings, 0: raw, -1: not recorded

  friend bool operator==(const TableDescription& a, const TableDescription& b) {
    return std::tie(a.model_name, a.model_path, a.model_format, a.fingerprint, a.precision,
                    a.normalized) == std::tie(b.model_name, b.model_path, b.model_format,
                                              b.fingerprint, b.precision, b.normalized);
  }
};

}  // namespace clipshard
