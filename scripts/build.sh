#!/usr/bin/env bash
# Configures and builds clipshard into build/ (RelWithDebInfo). Extra arguments go to cmake.
# Usage: scripts/build.sh [-DCMAKE_PREFIX_PATH=<cuda libtorch>/share/cmake ...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# Tests on explicitly: scripts/demo.sh configures the same build/ without them.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLIPSHARD_BUILD_TESTS=ON "$@" >/dev/null
cmake --build build -j"$jobs"
