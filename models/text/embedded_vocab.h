// The BPE vocabulary built into the binary, so that an installed or relocated clipshard needs no
// file from its source or build tree.
#pragma once

#include <string_view>

namespace clipshard::text {

// The bytes of models/data/bpe_simple_vocab_16e6.txt.gz (gzip, ~1.3 MB) as they were when the
// binary was built. Valid for the whole life of the process.
std::string_view embedded_bpe_gz();

}  // namespace clipshard::text
