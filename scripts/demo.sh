#!/usr/bin/env bash
# README command 1: installs the dependencies (Debian bookworm, as root), builds clipshard and runs
# the demo job of configs/demo.json on the bundled sample data (examples/), then shows the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh
rm -rf runs/demo
./build/driver/clipshard run configs/demo.json
echo
echo "== runs/demo/output.jsonl (first rows)"; head -n 4 runs/demo/output.jsonl
echo "== runs/demo/errors.jsonl"; cat runs/demo/errors.jsonl
echo "== runs/demo/summary.json (counts)"
/usr/bin/python3 -c 'import json;s=json.load(open("runs/demo/summary.json"));print({k:s[k] for k in ("rows_in","rows_out","error_records","errors_by_reason")})'
echo
echo "The demo model has random weights: its scores are meaningless. See docs/CONFIG.md to use real weights."
