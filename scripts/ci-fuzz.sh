#!/usr/bin/env bash
# CI fuzzing: builds every libFuzzer target of fuzz/ with clang (ASan + UBSan + libFuzzer)
# into build-fuzz and runs each for FUZZ_SECONDS (default 20) on a working copy of its seed corpus
# (fuzz/corpus/<target>/, committed, tiny). A crash, sanitizer report, leak, timeout or contract
# violation fails the script; the reproducer is left in build-fuzz/artifacts/.
# Needs clang and libFuzzer (Debian: clang-14 libclang-rt-14-dev).
# Usage: scripts/ci-fuzz.sh [TARGET...]     (default: all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
build=${FUZZ_BUILD_DIR:-build-fuzz}
cc=$(command -v clang-14 || command -v clang || true)
cxx=$(command -v clang++-14 || command -v clang++ || true)
[[ -n $cc && -n $cxx ]] || { echo "ci-fuzz: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
targets=("$@")
if (( ${#targets[@]} == 0 )); then
  targets=(manifest_line_fuzz run_config_fuzz tokenizer_fuzz image_decode_fuzz safetensors_fuzz
           torch_zip_fuzz tar_sample_fuzz)
fi

start=$SECONDS
CC=$cc CXX=$cxx cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCLIPSHARD_BUILD_FUZZERS=ON -DCLIPSHARD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
echo "ci-fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s"

# Torch's and OpenCV's static initialisers allocate for the process lifetime; everything else must
# be leak-free. halt_on_error makes UBSan findings fatal like ASan ones.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="$build/$t.log"
  t0=$SECONDS
  if "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work" > "$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "ci-fuzz: $t: ${runs:-?} runs in $((SECONDS - t0)) s, no findings"
  else
    status=1
    echo "ci-fuzz: $t: FINDING (log: $log, reproducer: $build/artifacts/$t-*)" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written|abort" "$log" | head -20 >&2 || true
  fi
done
echo "ci-fuzz: total $((SECONDS - start)) s"
exit $status
