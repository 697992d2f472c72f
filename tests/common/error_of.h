// The message of what a call throws, for tests that check error texts.
#pragma once

#include <exception>
#include <functional>
#include <string>

namespace clipshard::testing {

// what() of the exception `f` throws, or "" when it returns normally.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace clipshard::testing
