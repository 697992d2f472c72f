#!/usr/bin/env bash
# Runs CMD with a local Slurm cluster up (scripts/slurm-local.sh), SLURM_CONF exported, and stops the
# cluster afterwards; returns CMD's exit status.
#
#   scripts/with-slurm.sh CMD [ARGS...]        e.g. scripts/with-slurm.sh ctest --test-dir build -L slurm
#
# If SLURM_CONF already points at a cluster that answers, CMD just runs with it. If Slurm cannot start
# here (not root, slurm-wlm/munge not installed), CMD runs anyway and says why: the `slurm` tests then
# skip visibly. With CLIPSHARD_REQUIRE_SLURM=1 (CI), a cluster that cannot start is an error (exit 1).
set -uo pipefail
(($# > 0)) || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -n "${SLURM_CONF:-}" ]] && timeout 10 sinfo -h >/dev/null 2>&1; then
  echo "with-slurm: using the running cluster (SLURM_CONF=$SLURM_CONF)" >&2
  "$@"; exit $?
fi

state=$(mktemp -d "${TMPDIR:-/tmp}/clipshard-slurm.XXXXXX")/cluster
out=$("$here/slurm-local.sh" start "$state"); rc=$?
case "$rc" in
  0)
    eval "$out"; export SLURM_CONF
    stop() { "$here/slurm-local.sh" stop "$state" >/dev/null 2>&1; rmdir "$(dirname "$state")" 2>/dev/null; }
    trap stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "with-slurm: local Slurm cluster up (SLURM_CONF=$SLURM_CONF)" >&2
    "$@"; status=$?
    exit "$status" ;;  # the EXIT trap stops the cluster
  77)
    rmdir "$(dirname "$state")" 2>/dev/null
    echo "with-slurm: no local Slurm (reason above): running without it; the slurm tests will be SKIPPED" >&2
    "$@"; exit $? ;;
  *)
    rmdir "$(dirname "$state")" 2>/dev/null
    if [[ "${CLIPSHARD_REQUIRE_SLURM:-0}" == 1 ]]; then
      echo "with-slurm: Slurm failed to start and CLIPSHARD_REQUIRE_SLURM=1" >&2; exit 1
    fi
    echo "with-slurm: Slurm failed to start (exit $rc, reason above): running without it" >&2
    "$@"; exit $? ;;
esac
