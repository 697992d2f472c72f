# Shared helpers of the end-to-end shell tests (sourced). Environment from CTest:
# CLIPSHARD_BINARY, CLIPSHARD_SOURCE_DIR, CLIPSHARD_FIXTURES.
set -euo pipefail
: "${CLIPSHARD_BINARY:?}" "${CLIPSHARD_FIXTURES:?}"
WORK=$(mktemp -d /tmp/clipshard-e2e.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

MPIRUN=(mpirun --oversubscribe --mca btl self,vader --mca plm_rsh_agent /bin/false)
[[ $(id -u) == 0 ]] && MPIRUN+=(--allow-run-as-root)
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none

# make_dataset DIR ROWS IMAGE: a manifest of ROWS rows whose images are distinct symlinks to IMAGE
# (so every row is decoded), with a few bad lines mixed in.
make_dataset() {
  local dir=$1 rows=$2 image=$3
  mkdir -p "$dir/img"
  : > "$dir/manifest.jsonl"
  for ((i = 0; i < rows; i++)); do
    ln -sf "$image" "$dir/img/$i.jpg"
    case $((i % 29)) in
      7) echo '{"id": '$i', "image": "img/missing.jpg", "caption": "missing file"}' ;;
      11) echo '{not json' ;;
      13) echo '{"id": '$i', "image": "img/'$i'.jpg", "caption": "  "}' ;;
      *) echo '{"id": '$i', "image": "img/'$i'.jpg", "caption": "a photo number '$i' of a scene"}' ;;
    esac >> "$dir/manifest.jsonl"
  done
}

# write_config FILE MANIFEST OUTDIR [EXTRA_JSON_MEMBERS]: evaluator + filter on the tiny model.
write_config() {
  local file=$1 manifest=$2 out=$3 extra=${4:-}
  cat > "$file" <<JSON
{
  "input": ["$manifest"], "output_dir": "$out", "device": "cpu",
  "batch_size": 4, "lines_per_shard": 8, "progress_interval_s": 1, $extra
  "pipeline": [
    {"operator": "ImageCLIPEvaluator", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
     "input_image_key": "image", "input_text_key": "caption"},
    {"operator": "ImageClipFilter", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
     "threshold": 0.1}
  ]
}
JSON
}

done_shards() { ls "$1"/parts/*.done.json 2>/dev/null | wc -l; }

# wait_for_shards DIR N TIMEOUT_S: until DIR has at least N finished shards.
wait_for_shards() {
  local dir=$1 n=$2 timeout=$3 t=0
  while (( $(done_shards "$dir") < n )); do
    sleep 0.2; t=$((t + 1))
    if (( t > timeout * 5 )); then fail "no $n finished shards in $dir after ${timeout}s"; fi
  done
  return 0
}

# kill_rank_and_expect_failure RANK LAUNCHER_PID PATTERN: SIGKILL the clipshard process of MPI rank
# RANK among those whose command line matches PATTERN, then wait for the launcher, which must fail.
# Sets victim (the killed pid) and status (the launcher's exit status) for the caller's messages.
kill_rank_and_expect_failure() {
  local rank=$1 launcher=$2 pattern=$3 pid r
  victim=""
  for pid in $(pgrep -f "$pattern"); do
    r=$(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [[ $r == "$rank" ]] && victim=$pid
  done
  [[ -n $victim ]] || fail "worker rank $rank not found"
  kill -9 "$victim"
  set +e; wait "$launcher"; status=$?; set -e
  (( status != 0 )) || fail "the job did not fail after worker rank $rank was killed"
}

same_file() { cmp -s "$1" "$2" || { diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head; fail "$1 differs from $2"; }; }
