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

}  // namespace clipshard
