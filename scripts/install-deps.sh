#!/usr/bin/env bash
# Installs every Debian bookworm package clipshard needs to build, test and run (as root).
# Usage: scripts/install-deps.sh [--with-slurm]   (Slurm + munge are needed only by the `slurm` tests)
set -euo pipefail
packages=(
  build-essential cmake pkg-config git ca-certificates
  libtorch-dev libopenblas0-pthread        # LibTorch 1.13 (CPU) + a fast BLAS for it
  libopencv-dev                             # image I/O fallbacks (WebP/BMP/TIFF), cv::Mat
  libjpeg62-turbo-dev libpng-dev libgif-dev libwebp-dev  # decoders called directly (PIL parity)
  libhdf5-dev                               # embedding cache
  libopenmpi-dev openmpi-bin                # distributed runtime
  nlohmann-json3-dev libgtest-dev           # JSON, tests
  libicu-dev libutf8proc-dev libcli11-dev libxxhash-dev zlib1g-dev
  python3 python3-numpy python3-h5py python3-torch python3-pil  # helpers: fixture checks, benchmark baseline
  clang libclang-rt-14-dev                  # fuzzers and sanitizer builds
  python3-venv python3-pip python3-setuptools python3-wheel  # the Python package: offline venv install
  python3-pytest                            # the Python package's tests
  chromium                                  # report.html browser test (headless)
)
if [[ "${1:-}" == "--with-slurm" ]]; then packages+=(slurm-wlm munge); fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
