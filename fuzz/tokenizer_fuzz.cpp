// libFuzzer entry point: arbitrary bytes through both tokenizer flavours at the CLIP (77) and
// Long-CLIP (248) contexts, plus the Python text helpers. Checks the output contract; any crash,
// sanitizer report or contract violation is a finding. Uses the BPE vocabulary built into the
// binary (or the file $CLIPSHARD_BPE_PATH names).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "models/text/clip_tokenizer.h"
#include "models/text/python_text.h"

namespace {

using clipshard::fuzz::check;

void check_result(const clipshard::TokenizedText& r, int context) {
  check(r.ids.size() >= 2 && r.ids.size() <= static_cast<std::size_t>(context));
  check(r.ids.front() == 49406 && r.ids.back() == 49407);
  for (int32_t id : r.ids) check(id >= 0 && id < 49408);
  check(r.truncated == (r.n_bpe + 2 > context));
  if (!r.truncated) check(r.ids.size() == static_cast<std::size_t>(r.n_bpe) + 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const clipshard::ClipTokenizer openai =
      clipshard::ClipTokenizer::bundled(clipshard::TokenizerFlavor::kOpenAI);
  static const clipshard::ClipTokenizer hf =
      clipshard::ClipTokenizer::bundled(clipshard::TokenizerFlavor::kHuggingFaceFast);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const clipshard::ClipTokenizer* t : {&openai, &hf}) {
    for (int context : {77, 248}) check_result(t->tokenize(text, context), context);
    (void)t->clean_text(text);
  }
  const std::string joined = clipshard::python_split_join(text);
  check(clipshard::python_is_blank(text) == joined.empty());
  check_result(openai.tokenize(joined, 248), 248);
  return 0;
}
