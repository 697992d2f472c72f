// CLIPSHARD_CHECK: internal invariants (a bug in clipshard, never bad data or broken
// infrastructure), in the manner of faiss's FAISS_THROW_IF_NOT_FMT.
//
//   CLIPSHARD_CHECK(!committed_, "add after commit() (", path, ")");
//
// When `cond` is false it throws std::logic_error whose what() names the source file, line and
// function, the condition as written and the message (the arguments after `cond`, at least one,
// streamed with operator<< and only evaluated on failure). Per-row problems are RowStatus and
// broken infrastructure is std::runtime_error; neither uses this macro.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace clipshard::check_internal {

// Builds the message and throws; out of line from the caller's hot path (noinline, cold).
template <typename... Args>
[[noreturn]] __attribute__((noinline, cold)) void fail(const char* file, int line,
                                                       const char* function, const char* condition,
                                                       const Args&... message) {
  std::ostringstream text;
  text << "internal error at " << file << ":" << line << " in " << function << ": check `"
       << condition << "` failed: ";
  (text << ... << message);
  throw std::logic_error(text.str());
}

}  // namespace clipshard::check_internal

#define CLIPSHARD_CHECK(cond, ...)                                                         \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      ::clipshard::check_internal::fail(__FILE__, __LINE__, __func__, #cond, __VA_ARGS__); \
    }                                                                                      \
  } while (0)
