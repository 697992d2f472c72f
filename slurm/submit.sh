#!/usr/bin/env bash
# Submits slurm/clipshard.sbatch with the layout options written for you (docs/SLURM.md).
#
#   slurm/submit.sh [OPTIONS] [--] CONFIG.json [--set KEY=VALUE]...
#   slurm/submit.sh [OPTIONS] [--] --op OP --model M --input MANIFEST --output-dir DIR [...]
#
# Options (defaults in brackets):
#   --nodes N              nodes [1]
#   --gpus-per-node G      GPUs per node, one worker each [0 = CPU workers]
#   --workers-per-node W   worker ranks per node [G, or 1 on CPU-only nodes]
#   --cpus-per-worker C    CPUs per worker rank (decoding threads + CPU inference) [4]
#   --time T               time limit (sbatch --time) [cluster default]
#   --signal-seconds S     USR1 this long before the time limit: the ranks finish their batch, save,
#                          and the job requeues itself [300]
#   --partition P, --account A, --job-name NAME [clipshard]
#   --log-dir DIR          where %x-%j.out goes [./slurm-logs]
#   --clipshard PATH       the binary [$CLIPSHARD, else `clipshard` on PATH]
#   --sbatch-arg ARG       any further sbatch option (repeatable), e.g. --sbatch-arg=--qos=long
#   --dry-run              print the sbatch command instead of running it
# Prints the job id and the log path.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nodes=1 gpus=0 workers="" cpus=4 time="" signal=300 partition="" account="" name=clipshard
logdir=./slurm-logs clipshard=${CLIPSHARD:-} dry=0 extra=()
die() { echo "submit.sh: $*" >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while (($#)); do
  case "$1" in
    --nodes) need "$@"; nodes=$2; shift 2 ;;
    --gpus-per-node) need "$@"; gpus=$2; shift 2 ;;
    --workers-per-node) need "$@"; workers=$2; shift 2 ;;
    --cpus-per-worker) need "$@"; cpus=$2; shift 2 ;;
    --time) need "$@"; time=$2; shift 2 ;;
    --signal-seconds) need "$@"; signal=$2; shift 2 ;;
    --partition) need "$@"; partition=$2; shift 2 ;;
    --account) need "$@"; account=$2; shift 2 ;;
    --job-name) need "$@"; name=$2; shift 2 ;;
    --log-dir) need "$@"; logdir=$2; shift 2 ;;
    --clipshard) need "$@"; clipshard=$2; shift 2 ;;
    --sbatch-arg) need "$@"; extra+=("$2"); shift 2 ;;
    --sbatch-arg=*) extra+=("${1#--sbatch-arg=}"); shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
(($# > 0)) || die "missing the clipshard run arguments (CONFIG.json ...); see --help"
for v in nodes gpus cpus signal; do [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${v} must be a number, not '${!v}'"; done
[[ -n "$workers" ]] || workers=$(( gpus > 0 ? gpus : 1 ))
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers-per-node must be >= 1"
((nodes >= 1)) || die "--nodes must be >= 1"
if ((gpus > 0 && workers != gpus)); then
  echo "submit.sh: note: $workers workers on $gpus GPUs per node (workers share GPUs round-robin)" >&2
fi
if [[ -z "$clipshard" ]]; then clipshard=$(command -v clipshard || true); fi
[[ -n "$clipshard" && -x "$clipshard" ]] || die "clipshard binary not found: pass --clipshard PATH or set CLIPSHARD"
clipshard=$(cd "$(dirname "$clipshard")" && pwd)/$(basename "$clipshard")
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)

args=(--job-name="$name" --nodes="$nodes" --ntasks-per-node="$workers" --gpus-per-node="$gpus"
      --cpus-per-task="$cpus" --requeue --signal="B:USR1@$signal" --open-mode=append
      --output="$logdir/%x-%j.out")
[[ -n "$time" ]] && args+=(--time="$time")
[[ -n "$partition" ]] && args+=(--partition="$partition")
[[ -n "$account" ]] && args+=(--account="$account")
args+=("${extra[@]}")
if ((dry)); then
  printf 'CLIPSHARD=%q sbatch' "$clipshard"; printf ' %q' "${args[@]}" "$here/clipshard.sbatch" "$@"; echo
  exit 0
fi
job=$(CLIPSHARD=$clipshard sbatch --parsable "${args[@]}" "$here/clipshard.sbatch" "$@")
job=${job%%;*}
echo "submitted job $job: 1 driver + $((nodes * workers)) workers ($nodes node(s) x $workers, $gpus GPU(s)/node); log $logdir/$name-$job.out"
