// CLIPSHARD_CHECK (shard/check.h): throws std::logic_error naming file, line, function, the
// condition and the message; costs nothing (evaluates no message argument) when it holds.
#include "shard/check.h"

#include <gtest/gtest.h>

namespace clipshard {
namespace {

void guarded_function(int value) { CLIPSHARD_CHECK(value > 2, "value ", value, " is too small"); }

TEST(Check, ThrowsLogicErrorWithFileLineFunctionConditionAndMessage) {
  try {
    guarded_function(1);
    FAIL() << "no exception";
  } catch (const std::logic_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("check_test.cpp:10"), std::string::npos) << what;
    EXPECT_NE(what.find("guarded_function"), std::string::npos) << what;
    EXPECT_NE(what.find("`value > 2`"), std::string::npos) << what;
    EXPECT_NE(what.find("value 1 is too small"), std::string::npos) << what;
  }
}

TEST(Check, HoldsWithoutEvaluatingTheMessage) {
  int evaluated = 0;
  auto message = [&] {
    ++evaluated;
    return "never built";
  };
  EXPECT_NO_THROW(CLIPSHARD_CHECK(1 + 1 == 2, message()));
  EXPECT_EQ(evaluated, 0);
  EXPECT_THROW(CLIPSHARD_CHECK(1 + 1 == 3, message()), std::logic_error);
  EXPECT_EQ(evaluated, 1);
}

TEST(Check, IsOneStatementInIfElse) {
  bool threw = false;
  try {
    if (true)
      CLIPSHARD_CHECK(false, "taken");
    else
      threw = true;  // the macro must not capture this else
  } catch (const std::logic_error&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

}  // namespace
}  // namespace clipshard
