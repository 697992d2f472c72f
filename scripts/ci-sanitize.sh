#!/usr/bin/env bash
# CI sanitizers: builds the unit tests of the libraries that need no Torch — shard core,
# shard/cache (HDF5), models/text, models/image — with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DCLIPSHARD_SANITIZE=ON) into build-asan and runs them. Torch-linked suites are left out: their
# compile cost under ASan is most of CI's budget, and they are covered by the fuzzers' ASan build.
# Any sanitizer report fails the test it happens in (halt_on_error).
# Usage: scripts/ci-sanitize.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SANITIZE_BUILD_DIR:-build-asan}
start=$SECONDS
tests=()
for f in tests/shard/*_test.cpp tests/shard/cache/*_test.cpp tests/models/text/*_test.cpp \
         tests/models/image/*_test.cpp; do
  tests+=("$(basename "$f" .cpp)")
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLIPSHARD_SANITIZE=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${tests[@]}"
echo "ci-sanitize: built ${#tests[@]} test executables in $((SECONDS - start)) s"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0}
# HDF5's global state is never torn down: clipshard disables its exit cleanup (H5dont_atexit, see
# shard/cache/hdf5_handles.cpp), so what the library allocated for itself is still held at exit.
printf 'leak:libhdf5\n' > "$build/lsan.supp"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/$build/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
t0=$SECONDS
run_one() {  # run_one NAME: runs one test executable, leaves NAME.log and NAME.rc
  local t=$1 exe t1=$SECONDS rc=0
  exe=$(find "$build/tests" -type f -name "$t" -perm -u+x | head -1)
  if [[ -z $exe ]]; then echo "not built" > "$build/$t.log"; echo 1 > "$build/$t.rc"; return; fi
  "$exe" --gtest_brief=1 > "$build/$t.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t1))" > "$build/$t.rc"
}
# The executables run side by side, as many at a time as there are cores.
for t in "${tests[@]}"; do
  while (( $(jobs -rp | wc -l) >= $(nproc) )); do wait -n || true; done
  run_one "$t" &
done
wait
for t in "${tests[@]}"; do
  read -r rc secs < "$build/$t.rc"
  if [[ $rc == 0 ]]; then
    echo "ci-sanitize: $t: $(grep -Eo '[0-9]+ tests? from [0-9]+ test suites? ran' "$build/$t.log" | tail -1), passed (${secs} s)"
  else
    status=1
    echo "ci-sanitize: $t FAILED (log: $build/$t.log)" >&2
    grep -E "ERROR: |SUMMARY: |runtime error|FAILED|not built" "$build/$t.log" | head -20 >&2 || true
  fi
done
echo "ci-sanitize: tests ran in $((SECONDS - t0)) s; total $((SECONDS - start)) s"
exit $status
