#!/usr/bin/env bash
# Configures and builds clipshard into build/ (RelWithDebInfo). Extra arguments go to cmake.
# Usage: scripts/build.sh [-DCMAKE_PREFIX_PATH=<cuda libtorch>/share/cmake ...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build -j"$jobs"
