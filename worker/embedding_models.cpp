#include "worker/embedding_models.h"

namespace clipshard {

// The pipeline name carries the model's precision and device type where they are not the
// reference fp32 CPU: an fp16 embedding is never reused by an fp32 run.
CacheTable image_cache_table(const EmbeddingModels& models, int image_space) {
  const ImageSpace& space = models.image_spaces()[image_space];
  return {models.model_id(space.model), "image",
          space.pipeline + models.cache_numerics_suffix(space.model)};
}

CacheTable text_cache_table(const EmbeddingModels& models, int text_space) {
  const TextSpace& space = models.text_spaces()[text_space];
  return {models.model_id(space.model), "text",
          space.pipeline + models.cache_numerics_suffix(space.model)};
}

}  // namespace clipshard
