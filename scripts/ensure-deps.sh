#!/usr/bin/env bash
# Installs the Debian packages clipshard needs unless they are all present already (fast no-op).
set -euo pipefail
cd "$(dirname "$0")/.."
needed=(libtorch-dev libopenblas0-pthread libopencv-dev libhdf5-dev libopenmpi-dev openmpi-bin
        nlohmann-json3-dev libgtest-dev libicu-dev libutf8proc-dev libcli11-dev libxxhash-dev
        libgif-dev libwebp-dev libjpeg62-turbo-dev libpng-dev cmake g++ python3-h5py python3-torch
        slurm-wlm munge clang libclang-rt-14-dev python3-venv python3-pip python3-setuptools
        python3-wheel python3-pytest chromium)
missing=0
for p in "${needed[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || { missing=1; break; }; done
if [[ $missing == 1 ]]; then
  if [[ $(id -u) != 0 ]]; then echo "missing packages; run scripts/install-deps.sh --with-slurm as root" >&2; exit 1; fi
  scripts/install-deps.sh --with-slurm
fi
