// An EmbeddingModels without weights for unit tests of the shard phases (worker/shard_phases.h):
// it records every tower call (the batch's space and composition) and answers with embeddings
// that say which call and which position in the batch computed them, so a test can tell exactly
// how the phases batched their work.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "worker/embedding_models.h"

namespace clipshard::testing {

class FakeEmbeddingModels : public EmbeddingModels {
 public:
  static constexpr int kDim = 4;

  struct ImageCall {
    int space = 0;
    int64_t rows = 0;
  };
  struct TextCall {
    int space = 0;
    int64_t padded_length = 0;              // columns of the ids tensor
    std::vector<std::vector<int32_t>> ids;  // each row without its zero padding
  };

  // Operator o embeds its images into image space op_image_space[o] and its captions into text
  // space op_text_space[o]. Space i of either kind belongs to model i; image spaces preprocess to
  // `image_size` px squares.
  FakeEmbeddingModels(std::vector<int> op_image_space, std::vector<int> op_text_space,
                      int image_size = 16, int context_length = 8)
      : op_image_space_(std::move(op_image_space)), op_text_space_(std::move(op_text_space)) {
    int images = 0, texts = 0, models = 0;
    for (int s : op_image_space_) images = std::max(images, s + 1);
    for (int s : op_text_space_) texts = std::max(texts, s + 1);
    for (int s = 0; s < images; ++s)
      image_spaces_.push_back(
          {s, "fake" + std::to_string(image_size), hf_clip_preprocess(image_size)});
    for (int s = 0; s < texts; ++s) {
      TextSpace t;
      t.model = s;
      t.pipeline = "words" + std::to_string(context_length);
      t.context_length = context_length;
      text_spaces_.push_back(t);
    }
    models = std::max(images, texts);
    for (int m = 0; m < models; ++m) model_ids_.push_back("fake-model-" + std::to_string(m));
  }

  int image_space_of(size_t op) const override { return op_image_space_.at(op); }
  int text_space_of(size_t op) const override { return op_text_space_.at(op); }
  const std::vector<ImageSpace>& image_spaces() const override { return image_spaces_; }
  const std::vector<TextSpace>& text_spaces() const override { return text_spaces_; }
  const std::string& model_id(int model) const override { return model_ids_.at(model); }
  std::string cache_numerics_suffix(int) const override { return ""; }
  TableDescription table_description(int model) const override {
    TableDescription d;
    d.model_name = model_ids_.at(model);
    d.fingerprint = model_ids_.at(model);
    d.precision = "fp32";
    d.normalized = 1;
    return d;
  }

  // One id per whitespace-separated word (a hash of it, never 0), cut at the space's context
  // length.
  TokenizedText tokenize(int text_space, std::string_view caption) const override {
    ++tokenize_calls;
    TokenizedText t;
    std::istringstream words{std::string(caption)};
    std::string word;
    const auto limit = static_cast<size_t>(text_spaces_.at(text_space).context_length);
    while (words >> word) {
      ++t.n_bpe;
      if (t.ids.size() == limit) {
        t.truncated = true;
        continue;
      }
      uint32_t h = 2166136261u;
      for (unsigned char c : word) h = (h ^ c) * 16777619u;
      t.ids.push_back(static_cast<int32_t>(1 + h % 30000));
    }
    return t;
  }

  at::Tensor encode_images(int image_space, const at::Tensor& images) override {
    const int64_t n = images.size(0);
    EXPECT_EQ(images.size(2), image_spaces_.at(image_space).spec.size);
    image_calls.push_back({image_space, n});
    const int call = static_cast<int>(image_calls.size()) - 1;
    if (on_image_call) on_image_call(call);
    return answer(call, n, /*kind=*/1.0f);
  }

  at::Tensor encode_texts(int text_space, const at::Tensor& ids) override {
    TextCall c;
    c.space = text_space;
    c.padded_length = ids.size(1);
    auto acc = ids.accessor<int64_t, 2>();
    for (int64_t r = 0; r < ids.size(0); ++r) {
      std::vector<int32_t> row;
      for (int64_t k = 0; k < ids.size(1) && acc[r][k] != 0; ++k)
        row.push_back(static_cast<int32_t>(acc[r][k]));
      c.ids.push_back(std::move(row));
    }
    text_calls.push_back(std::move(c));
    const int call = static_cast<int>(text_calls.size()) - 1;
    if (on_text_call) on_text_call(call);
    return answer(call, ids.size(0), /*kind=*/2.0f);
  }

  bool uses_cuda() const override { return false; }

  // Which call (index into image_calls / text_calls) and which row of its batch computed `emb`.
  static int call_of(const std::vector<float>& emb) { return std::lround(emb[1] / emb[0]); }
  static int position_of(const std::vector<float>& emb) { return std::lround(emb[2] / emb[0]); }

  std::vector<ImageCall> image_calls;
  std::vector<TextCall> text_calls;
  mutable std::atomic<int> tokenize_calls{0};
  // Called inside each tower call (after it is recorded), e.g. to raise a stop flag mid-phase.
  std::function<void(int call)> on_image_call, on_text_call;

 private:
  // Row b of call c: normalise([1, c, b, kind]).
  static at::Tensor answer(int call, int64_t rows, float kind) {
    at::Tensor out = torch::empty({rows, kDim});
    auto acc = out.accessor<float, 2>();
    for (int64_t b = 0; b < rows; ++b) {
      const float v[kDim] = {1.0f, static_cast<float>(call), static_cast<float>(b), kind};
      float norm = 0.0f;
      for (float x : v) norm += x * x;
      norm = std::sqrt(norm);
      for (int k = 0; k < kDim; ++k) acc[b][k] = v[k] / norm;
    }
    return out;
  }

  std::vector<int> op_image_space_, op_text_space_;
  std::vector<ImageSpace> image_spaces_;
  std::vector<TextSpace> text_spaces_;
  std::vector<std::string> model_ids_;
};

}  // namespace clipshard::testing
