#!/usr/bin/env bash
# README command 1: installs what building and running clipshard needs (Debian bookworm, as root;
# scripts/install-deps.sh --demo: no test, Python, fuzzing or Slurm tools), builds only the
# `clipshard` binary into build/ (no tests, no benchmarks) and runs the demo job of
# configs/demo.json on the sample data in examples/, then shows the result.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/ensure-deps.sh --demo
# Tests off: configuring them needs GoogleTest, which the demo does not install. scripts/build.sh
# (and so scripts/test.sh) turns them back on in the same build directory.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLIPSHARD_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target clipshard
rm -rf runs/demo
./build/driver/clipshard run configs/demo.json
echo
echo "== runs/demo/output.jsonl (first rows)"; head -n 4 runs/demo/output.jsonl
echo "== runs/demo/errors.jsonl"; cat runs/demo/errors.jsonl
echo "== runs/demo/summary.json (counts)"
grep -E '^  "(rows_in|rows_out|error_records)":' runs/demo/summary.json || true
sed -n '/^  "errors_by_reason"/,/^  }/p' runs/demo/summary.json
echo
echo "== runs/demo/report.html: score histograms, kept/dropped, errors, throughput (open it in a browser)"
echo "   file://$(pwd)/runs/demo/report.html"
echo "demo finished in $((SECONDS - start)) s"
echo "The demo model has random weights: its scores are meaningless. README.md and docs/CONFIG.md"
echo "say how to point model_name at real weights."
