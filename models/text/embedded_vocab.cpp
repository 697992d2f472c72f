#include "models/text/embedded_vocab.h"

// The file is pulled in by the assembler (.incbin) rather than generated as a C++ byte array: a
// 1.3 MB array initializer costs the compiler seconds and hundreds of MB, .incbin costs nothing.
// models/CMakeLists.txt passes the absolute path and makes this object depend on the file (the
// compiler's own dependency scan does not see .incbin); ccache recognises .incbin and compiles
// such a file itself instead of serving a stale cached object.
#ifndef CLIPSHARD_EMBEDDED_BPE_FILE
#error "CLIPSHARD_EMBEDDED_BPE_FILE must name bpe_simple_vocab_16e6.txt.gz (models/CMakeLists.txt)"
#endif

__asm__(
    ".pushsection .rodata.clipshard_bpe_vocab, \"a\", @progbits\n"
    ".balign 16\n"
    ".globl clipshard_embedded_bpe_begin\n"
    ".hidden clipshard_embedded_bpe_begin\n"
    "clipshard_embedded_bpe_begin:\n"
    ".incbin \"" CLIPSHARD_EMBEDDED_BPE_FILE
    "\"\n"
    ".globl clipshard_embedded_bpe_end\n"
    ".hidden clipshard_embedded_bpe_end\n"
    "clipshard_embedded_bpe_end:\n"
    ".popsection\n");

extern "C" {
__attribute__((visibility("hidden"))) extern const char clipshard_embedded_bpe_begin[];
__attribute__((visibility("hidden"))) extern const char clipshard_embedded_bpe_end[];
}

namespace clipshard::text {

std::string_view embedded_bpe_gz() {
  return std::string_view(
      clipshard_embedded_bpe_begin,
      static_cast<std::size_t>(clipshard_embedded_bpe_end - clipshard_embedded_bpe_begin));
}

}  // namespace clipshard::text
