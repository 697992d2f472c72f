// Runs small /usr/bin/python3 scripts (with torch) that check what the C++ writers produced.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace clipshard::testing {

// True when /usr/bin/python3 can import torch (otherwise the Python cross-checks are skipped).
inline bool python_torch_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0;
  return ok;
}

// Writes `script` into `dir`, runs it with the given arguments and returns its stdout; `rc` gets
// the exit status.
inline std::string run_python(const std::filesystem::path& dir, const std::string& script,
                              const std::string& args, int* rc) {
  const auto py = dir / "check.py";
  std::ofstream(py) << script;
  const std::string cmd = "/usr/bin/python3 " + py.string() + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace clipshard::testing
