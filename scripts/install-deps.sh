#!/usr/bin/env bash
# Installs the Debian bookworm packages clipshard needs (as root).
# Usage: scripts/install-deps.sh [--demo | --dev | --with-slurm] [--list]
#   --demo        what building the `clipshard` binary and running it needs (scripts/demo.sh):
#                 compiler, CMake and the libraries. No test, fuzzing, Python or Slurm tools.
#   --dev         (the default) --demo + GoogleTest, the Python helpers of the tests and benchmarks,
#                 clang for the fuzzers and sanitizer builds: everything but the `slurm` tests.
#   --with-slurm  --dev + Slurm and munge, for the `slurm` tests (what CI installs).
#   --list        print the packages of the chosen set, one per line, and install nothing
#                 (scripts/ensure-deps.sh checks them with dpkg).
set -euo pipefail
demo=(
  build-essential cmake pkg-config ca-certificates
  libtorch-dev libopenblas0-pthread        # LibTorch 1.13 (CPU) + a fast BLAS for it (~40x)
  libdnnl-dev                               # oneDNN's headers: prepacked fp32 projections (CLIPSHARD_ONEDNN)
  libopencv-dev                             # image I/O fallbacks (WebP/BMP/TIFF), cv::Mat
  libjpeg62-turbo-dev libpng-dev libgif-dev libwebp-dev  # decoders called directly (PIL parity)
  libhdf5-dev                               # embedding cache
  libopenmpi-dev openmpi-bin                # distributed runtime
  nlohmann-json3-dev libicu-dev libcli11-dev libxxhash-dev zlib1g-dev
)
dev=(
  git libgtest-dev                          # tests
  python3 python3-numpy python3-h5py python3-torch python3-pil  # fixture checks, benchmark baseline
  python3-regex                             # the benchmark baseline's CLIP tokenizer (bench/bench.py)
  clang libclang-rt-14-dev                  # fuzzers and sanitizer builds
  python3-venv python3-pip python3-setuptools python3-wheel  # the Python package: offline venv install
  python3-pytest                            # the Python package's tests
  chromium                                  # report.html browser test (headless)
)
slurm=(slurm-wlm munge)

set_name=dev
list=0
for arg in "$@"; do
  case $arg in
    --demo) set_name=demo ;;
    --dev) set_name=dev ;;
    --with-slurm) set_name=slurm ;;
    --list) list=1 ;;
    *) echo "usage: $0 [--demo | --dev | --with-slurm] [--list]" >&2; exit 2 ;;
  esac
done
packages=("${demo[@]}")
[[ $set_name == demo ]] || packages+=("${dev[@]}")
[[ $set_name != slurm ]] || packages+=("${slurm[@]}")

if [[ $list == 1 ]]; then printf '%s\n' "${packages[@]}"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
