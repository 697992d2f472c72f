// The fuzz targets' contract check: a violated contract aborts, which libFuzzer reports as a
// finding with the input that caused it (an exception would be reported the same way but could
// be caught by the code under test).
#pragma once

#include <cstdlib>

namespace clipshard::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace clipshard::fuzz
