#!/usr/bin/env bash
# README command 2: the whole test suite. Installs missing dependencies (as root), builds, starts a
# local Slurm cluster for the `slurm` tests when it can (scripts/with-slurm.sh), runs every CTest
# label: unit and parity in parallel, then the multi-process mpi and slurm tests one at a time; then
# the reliability jobs of CI: unit tests under ASan+UBSan (scripts/ci-sanitize.sh) and a short run of
# every libFuzzer target (scripts/ci-fuzz.sh) and the GPU check's CPU dry run (docs/GPU.md).
# CLIPSHARD_QUICK_TESTS=1 skips those three.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE 'mpi|slurm|gpu' || status=1
ctest --test-dir build --output-on-failure -L gpu || status=1
scripts/with-slurm.sh ctest --test-dir build --output-on-failure -L 'mpi|slurm' || status=1
if [[ "${CLIPSHARD_QUICK_TESTS:-0}" != 1 ]]; then
  scripts/ci-sanitize.sh || status=1
  scripts/ci-fuzz.sh || status=1
  # The GPU check's CPU dry run (docs/GPU.md): the lean build against the staged libraries.
  scripts/gpu-check.sh --dry-run --out build-gpu-dry/check || status=1
fi
exit $status
