#!/usr/bin/env bash
# The one-command GPU check (docs/GPU.md). On a CUDA machine with Python torch, from the repo root:
#   scripts/gpu-check.sh --out DIR                 # about 8 minutes in all
#   scripts/gpu-check.sh --dry-run --out DIR       # here, on the CPU: the same steps, no GPU
# Steps (each with a time budget; a failure names its log in DIR and ends the check):
#   1. checks   a GPU (nvidia-smi) and LibTorch (python3 -c 'import torch; ...cmake_prefix_path')
#   2. deps     unpacks gpu-deps/gpu-deps.tar.xz (scripts/stage-gpu-deps.sh made it) into a prefix
#   3. configure the lean build (no MPI, no OpenCV, Release, Ninja) against that prefix
#   4. build    clipshard, the gpu tests and model_bench only
#   5. test     ctest -L gpu
#   6. bench    bench/gpu_bench.py: the towers per preset/precision (fp16, bf16, fp32)/batch, then
#               end to end; bench/gpu_bench_check.py: every planned row is in the table or skipped
# DIR gets one log per step, gpu-check.json (what passed, times, versions) and gpu-bench.md/.json.
# The dry run also stages the deps when the archive is missing (needs apt), links against the
# unpacked prefix rather than the system's -dev packages and checks that with ldd, runs the gpu
# label (it skips without CUDA) and a tiny CPU bench. Options: --deps FILE (the archive),
# --build-dir DIR, --jobs N, --budget SECONDS (whole check; default 480, dry run 2400).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="" dry=0 deps=$repo/gpu-deps/gpu-deps.tar.xz build="" jobs=$(nproc) budget=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --deps) deps=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n $out ]] || { echo "gpu-check.sh: --out DIR is required" >&2; exit 2; }
# The GPU machine's time is short (8 minutes for everything); the dry run builds on whatever CPU
# runs CI (a full build on 2 cores without ccache: about 8 minutes), so it gets more.
build_limit=330
if [[ $dry == 1 ]]; then build_limit=1500; fi
budget=${budget:-$([[ $dry == 1 ]] && echo 2400 || echo 480)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -z $build ]]; then build=$repo/build-gpu$([[ $dry == 1 ]] && echo -dry || true); fi
prefix=$build/deps  # the unpacked libraries; kept with the build so a rerun skips the unpacking
start=$(date +%s)
deadline=$((start + budget))
declare -A seconds=()
step=""
python=python3
[[ $dry == 1 ]] && python=/usr/bin/python3  # Debian's, with its torch (a venv may come first)

report() {  # report STATUS MESSAGE: gpu-check.json and the last line
  local status=$1 message=$2 times="" k
  for k in "${!seconds[@]}"; do times+="\"$k\": ${seconds[$k]}, "; done
  cat >"$out/gpu-check.json" <<JSON
{"status": "$status", "dry_run": $([[ $dry == 1 ]] && echo true || echo false), "step": "$step",
 "message": $(printf '%s' "$message" | $python -c 'import json,sys; print(json.dumps(sys.stdin.read()))'),
 "seconds": {${times%, }}, "total_seconds": $(($(date +%s) - start)),
 "torch": "${torch_version:-}", "cuda": "${cuda_version:-}", "gpu": "${gpu_name:-}",
 "compiler": "${compiler:-}"}
JSON
  echo "gpu-check: $status: $message"
}
fail() {  # fail MESSAGE LOG
  report failed "$step: $1 (log: $out/$2)"
  [[ -f $out/$2 ]] && tail -n 20 "$out/$2" >&2
  exit 1
}
# run_step NAME BUDGET LOG CMD...: CMD with its output in DIR/LOG, at most BUDGET seconds and
# never past the deadline.
run_step() {
  local name=$1 limit=$2 logname=$3 t0 rc=0
  shift 3
  step=$name
  local left=$((deadline - $(date +%s)))
  ((limit > left)) && limit=$left
  ((limit < 5)) && fail "no time left in the ${budget}s budget" "$logname"
  echo "gpu-check: $name (at most ${limit}s, log $out/$logname)"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$out/$logname" 2>&1 || rc=$?
  seconds[$name]=$(($(date +%s) - t0))
  if [[ $rc == 124 || $rc == 137 ]]; then fail "ran past its ${limit}s budget" "$logname"; fi
  [[ $rc == 0 ]] || fail "failed (exit $rc)" "$logname"
}

# 1. checks ------------------------------------------------------------------------------------
step=checks
if [[ $dry == 0 ]]; then
  command -v nvidia-smi >/dev/null || { report failed "checks: no nvidia-smi: no GPU here"; exit 1; }
  nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1 || fail "nvidia-smi sees no GPU" nvidia-smi.txt
  gpu_name=$(head -1 "$out/nvidia-smi.txt")
  $python -c 'import torch; print(torch.__version__); print(torch.version.cuda); print(torch.utils.cmake_prefix_path); assert torch.cuda.is_available(), "torch sees no CUDA device"' \
    >"$out/torch.txt" 2>&1 || fail "no usable Python torch (LibTorch comes from it)" torch.txt
  torch_version=$(sed -n 1p "$out/torch.txt")
  cuda_version=$(sed -n 2p "$out/torch.txt")
  torch_prefix=$(sed -n 3p "$out/torch.txt")
  [[ -f $torch_prefix/Torch/TorchConfig.cmake ]] ||
    fail "no TorchConfig.cmake under $torch_prefix" torch.txt
  command -v nvcc >/dev/null || export PATH=$PATH:/usr/local/cuda/bin
else
  torch_prefix=""  # Debian's LibTorch 1.13 (CPU) is where CMake looks by default
  torch_version=$($python -c 'import torch; print(torch.__version__)' 2>/dev/null || echo unknown)
fi
command -v cmake >/dev/null || { report failed "checks: no cmake"; exit 1; }
generator=(-G Ninja)
command -v ninja >/dev/null || generator=()
compiler=$( (c++ --version || g++ --version) 2>/dev/null | head -1 || true)

# 2. deps --------------------------------------------------------------------------------------
if [[ ! -f $deps ]]; then
  if [[ $dry == 1 ]]; then
    run_step stage 900 stage.log "$repo/scripts/stage-gpu-deps.sh" --dest "$(dirname "$deps")"
  else
    step=deps
    report failed "deps: $deps is missing: run scripts/stage-gpu-deps.sh on Debian and carry it"
    exit 1
  fi
fi
unpack() {
  rm -rf "$prefix" && mkdir -p "$prefix"
  # tar's xz filter, or Python's lzma when the host has no xz program.
  tar -C "$prefix" -xJf "$deps" 2>/dev/null ||
    $python -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$deps" "$prefix"
  lib=$prefix/usr/lib/x86_64-linux-gnu
  # Runtime libraries: on the GPU host only the sonames it lacks (its own newer zlib, libcurl ...
  # stay in use; ICU 72 and HDF5 103 come from here); in the dry run all of them, to prove they load.
  mkdir -p "$prefix/runtime-lib"
  for so in "$lib"/*.so.* "$prefix"/lib/x86_64-linux-gnu/*.so.*; do  # zlib and a few live in /lib
    soname=$(basename "$so")
    [[ $soname =~ \.so\.[0-9]+$ ]] || continue
    if [[ $dry == 1 ]] || ! /sbin/ldconfig -p | grep -q "^[[:space:]]*$soname "; then
      ln -sf "$so" "$prefix/runtime-lib/$soname"
    fi
  done
  ls "$prefix/runtime-lib"
}
stamp=$prefix/.from
if [[ ! -f $stamp || $(cat "$stamp") != "$(stat -c '%s %Y' "$deps")" ]]; then
  export -f unpack
  export prefix deps dry python
  run_step deps 120 deps.log bash -c unpack
  stat -c '%s %Y' "$deps" >"$stamp"
fi
lib=$prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$prefix/runtime-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# pkg-config from the prefix, reading only the prefix's .pc files; the sysroot maps their /usr
# paths into the prefix.
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix
unset PKG_CONFIG_PATH

# 3. configure ---------------------------------------------------------------------------------
cmake_args=(
  -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
  -DCLIPSHARD_WITH_MPI=OFF -DCLIPSHARD_WITH_OPENCV=OFF
  # The prefix first (before the system's paths); HDF5_ROOT limits FindHDF5 to it.
  "-DCMAKE_PREFIX_PATH=${torch_prefix:+$torch_prefix;}$prefix/usr"
  -DHDF5_ROOT="$lib/hdf5/serial" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON
  -DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf"
  # Headers: the prefix's before /usr/include (pkg-config drops it as a system directory).
  "-DCMAKE_CXX_FLAGS=-isystem $prefix/usr/include"
  # Link: the prefix's libraries resolve the NEEDED entries of those linked (libhdf5 -> libsz ...).
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$lib:$prefix/lib/x86_64-linux-gnu"
)
if [[ $dry == 0 ]]; then
  # The GPU host's H200 only (sm_90): less to detect, nothing to compile for other GPUs.
  cmake_args+=(-DTORCH_CUDA_ARCH_LIST=9.0 -DCLIPSHARD_BUILD_TESTS=ON)
  # Torch's CMake package looks for the CUDA toolkit (FindCUDAToolkit): point it at this nvcc.
  if command -v nvcc >/dev/null; then
    nvcc_path=$(command -v nvcc)
    cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc_path" -DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc_path")")")
  fi
fi
run_step configure 120 configure.log cmake "${cmake_args[@]}"

# 4. build -------------------------------------------------------------------------------------
run_step build "$build_limit" build.log cmake --build "$build" -j "$jobs" --target clipshard cuda_operators_test model_bench

# Which libraries were used: the prefix's must be, for every staged library the build links.
step=linkage
ldd "$build/driver/clipshard" >"$out/ldd-clipshard.txt" 2>&1 || fail "ldd failed" ldd-clipshard.txt
grep -q "not found" "$out/ldd-clipshard.txt" && fail "a library is not found at run time" ldd-clipshard.txt
# Every library clipshard names (NEEDED) that was staged must load from the prefix (the build's
# RUNPATH, or runtime-lib) — except, on the GPU host, a soname the host has itself (not linked into
# runtime-lib: zlib, say), which may load from the host. HDF5 and ICU must be among them.
staged_needed=""
for soname in $(readelf -d "$build/driver/clipshard" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  [[ -e $lib/$soname || -e $prefix/lib/x86_64-linux-gnu/$soname ]] || continue
  staged_needed+="$soname "
  grep -q "^[[:space:]]*$soname => $prefix/" "$out/ldd-clipshard.txt" && continue
  [[ $dry == 0 && ! -e $prefix/runtime-lib/$soname ]] && continue
  fail "$soname does not come from $prefix" ldd-clipshard.txt
done
[[ $staged_needed == *libhdf5_serial.so.103* && $staged_needed == *libicuuc.so.72* ]] ||
  fail "clipshard does not link the staged HDF5 and ICU (it names: $staged_needed)" ldd-clipshard.txt
echo "$staged_needed" >"$out/staged-needed.txt"
grep -E "^(HDF5_hdf5_LIBRARY_RELEASE|HDF5_C_INCLUDE_DIR|ICU_[A-Z0-9]+_LIBRARY_RELEASE|ICU_INCLUDE_DIR|PNG_LIBRARY_RELEASE|JPEG_LIBRARY_RELEASE|GIF_LIBRARY|ZLIB_LIBRARY_RELEASE|XXHASH_[A-Z]+|pkgcfg_lib_[A-Za-z0-9_]+|nlohmann_json_DIR|GTest_DIR|CLI11_DIR|Torch_DIR):" \
  "$build/CMakeCache.txt" >"$out/found-libraries.txt" || true
if grep -v "Torch_DIR" "$out/found-libraries.txt" | grep -v "$prefix" | grep -q "/"; then
  fail "CMake found a library outside $prefix" found-libraries.txt
fi
"$build/driver/clipshard" version >"$out/version.txt" 2>&1 || fail "clipshard does not start" version.txt
# Without MPI, several ranks under a launcher must be refused before anything is written.
step=no-mpi
if OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$build/driver/clipshard" run \
  --op ImageCLIPEvaluator --model "$repo/tests/fixtures/models/tiny/hf" \
  --input "$repo/tests/fixtures/operators/clip_eval/input.jsonl" \
  --output-dir "$build/no-mpi-run" >"$out/no-mpi.txt" 2>&1; then
  fail "a lean clipshard ran as 2 MPI ranks" no-mpi.txt
fi
grep -q "built without MPI" "$out/no-mpi.txt" || fail "no clear message for 2 ranks" no-mpi.txt
[[ ! -e $build/no-mpi-run ]] || fail "the refused run wrote $build/no-mpi-run" no-mpi.txt

# 5. test --------------------------------------------------------------------------------------
run_step test 120 ctest-gpu.log ctest --test-dir "$build" -L gpu --output-on-failure
if [[ $dry == 0 ]] && grep -q "Skipped\|SKIPPED" "$out/ctest-gpu.log"; then
  fail "the gpu tests skipped on a GPU machine" ctest-gpu.log
fi

# 6. bench -------------------------------------------------------------------------------------
bench_args=(--build-dir "$build" --out "$out" --work "$build/bench-work" --deadline "$((deadline - 5))")
if [[ $dry == 1 ]]; then bench_args+=(--device cpu --quick); else bench_args+=(--device cuda); fi
run_step bench 400 bench-run.log $python "$repo/bench/gpu_bench.py" "${bench_args[@]}"
# Every planned measurement is in gpu-bench.json and gpu-bench.md, or listed as skipped (the GPU's
# deadline may cut the last ones); the dry run has time for all of them, bf16 included.
check_args=("$out")
if [[ $dry == 1 ]]; then check_args+=(--require-all); fi
run_step bench-check 30 bench-check.log $python "$repo/bench/gpu_bench_check.py" "${check_args[@]}"

step=done
report ok "$([[ $dry == 1 ]] && echo "dry run" || echo "GPU check") finished in $(($(date +%s) - start))s; results in $out/gpu-bench.md"
