#!/usr/bin/env bash
# The clipshard benchmark in one command (bench/README.md): generates its data and models in a
# work directory, then measures clipshard end to end, a PyTorch baseline and the FLOP limit.
#   bench/run_bench.sh [--build-dir DIR] [--work DIR] [--images N] [--longclip-images N] ...
# (bench/bench.py --help lists every option). Needs the clipshard and bench_probe targets built:
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target clipshard bench_probe
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec /usr/bin/python3 "$here/bench.py" "$@"
