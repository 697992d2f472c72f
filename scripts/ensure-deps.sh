#!/usr/bin/env bash
# Installs the Debian packages of one set of scripts/install-deps.sh unless they are all present
# already (a fast no-op then). Usage: scripts/ensure-deps.sh [--demo | --dev | --with-slurm]
# (default --with-slurm: everything scripts/test.sh runs, the `slurm` tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
set_flag=${1:---with-slurm}
packages=$(scripts/install-deps.sh "$set_flag" --list)  # exits 2 on an unknown flag
missing=()
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) != 0 ]]; then
    echo "missing packages: ${missing[*]}; run scripts/install-deps.sh $set_flag as root" >&2
    exit 1
  fi
  scripts/install-deps.sh "$set_flag"
fi
