#!/usr/bin/env bash
# A run that is stopped twice on a real Slurm and comes back each time:
#   1. `scontrol requeue` mid-run: Slurm sends SIGTERM, the ranks finish their batch and exit 75, Slurm
#      requeues the job;
#   2. USR1 to the batch shell (`scancel --batch --signal=USR1`, exactly what --signal=B:USR1@T does T
#      seconds before the time limit): the script forwards it to the ranks, they exit 75, and the
#      script requeues the job itself.
# Each restart must resume (the log's "shards done before: N" grows, finished shards are skipped), the
# job must end COMPLETED with "clipshard: finished" last, and output.jsonl must be byte-identical to a
# plain uninterrupted run. Slurm holds a requeued job for ~2 minutes (BeginTime, so that the credential
# of the killed attempt expires); the test releases it early with `scontrol update StartTime=now`, but
# not within the second of the requeue: slurmd refuses a launch whose credential is not newer (whole
# seconds) than the revocation of the old attempt ("Killing non-startable batch job: Job credential
# revoked", the job then ends FAILED with exit 1 — seen in 1 of 6 runs before the wait was added).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_test_setup
cd "$src" || fail "no source dir $src"

# A bigger input: the demo manifest repeated (same images, via a link), small shards and batches.
repeat=${CLIPSHARD_REQUEUE_REPEAT:-40}
mkdir -p "$work/data" && ln -s "$src/examples/images" "$work/data/images"
for ((i = 0; i < repeat; i++)); do cat examples/manifest.jsonl; done >"$work/data/manifest.jsonl"
lines=$(wc -l <"$work/data/manifest.jsonl")
args=(configs/demo.json --set "input=[\"$work/data/manifest.jsonl\"]" --set lines_per_shard=2
      --set batch_size=2 --set progress_interval_s=0.5)

note "plain run ($lines manifest lines)"
t0=$SECONDS
"$bin" run "${args[@]}" --set output_dir="$work/plain" >"$work/plain.log" 2>&1 ||
  { cat "$work/plain.log"; fail "plain clipshard run failed"; }
note "plain run took $((SECONDS - t0))s"

submit --nodes 1 --workers-per-node 2 --cpus-per-worker 1 --job-name requeue -- \
  "${args[@]}" --set output_dir="$work/slurm"
log="$work/logs/requeue-$job.out"
run="$work/slurm"

# wait_progress MIN: until this attempt's progress lines (every 0.5 s in the log, counting the shards
# of this attempt: "shards D/TODO") show at least MIN finished shards; fails if the job ends first.
# (The log is read rather than `clipshard status`, which takes seconds to start on a loaded machine.)
wait_progress() {
  local deadline=$((SECONDS + 240)) d todo st p from=$(( $(cat "$log" 2>/dev/null | wc -l) + 1 ))
  while ((SECONDS < deadline)); do
    st=$(job_field "$job" JobState)
    p=$(tail -n +"$from" "$log" 2>/dev/null | grep -ao '^clipshard: \(progress\|done\) .*, shards [0-9]*/[0-9]*' |
        tail -n 1 | grep -o 'shards [0-9]*/[0-9]*$')
    d=${p#shards }; d=${d%/*}; todo=${p#*/}
    if [[ -n "$p" ]] && ((d >= $1)); then
      ((d < todo)) || fail "the attempt finished ($d/$todo shards) before it could be stopped: make the input bigger (CLIPSHARD_REQUEUE_REPEAT)"
      note "job $job $st: $d of this attempt's $todo shards done"; return 0
    fi
    [[ "$st" == PENDING || "$st" == RUNNING || "$st" == CONFIGURING ]] || { show_log "$log"; fail "job $job ended ($st) early"; }
    sleep 0.2
  done
  fail "no progress to $1 shards in 240s"
}
# release_requeued N: wait until the job has been requeued N times, then let it start — 2 s later, so
# that the new attempt's credential is newer than the old one's revocation (see the top).
release_requeued() {
  local deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    if [[ "$(job_field "$job" Restarts)" == "$1" && "$(job_field "$job" JobState)" == PENDING ]]; then
      sleep 2
      note "job $job requeued (Restarts=$1, $(job_field "$job" Reason)); releasing it now"
      scontrol update JobId="$job" StartTime=now || fail "scontrol update StartTime=now failed"
      return 0
    fi
    sleep 0.3
  done
  show_log "$log"; fail "job $job not requeued (Restarts=$(job_field "$job" Restarts), $(job_field "$job" JobState))"
}

wait_progress 10
note "scontrol requeue $job"
scontrol requeue "$job" || fail "scontrol requeue refused"
release_requeued 1
wait_progress 10
note "USR1 to the batch shell of job $job (as --signal=B:USR1@T does)"
scancel --batch --signal=USR1 "$job" || fail "scancel --signal=USR1 failed"
release_requeued 2
wait_job_state "$job" 300 COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY
show_log "$log"

state=$(job_field "$job" JobState) code=$(job_field "$job" ExitCode) restarts=$(job_field "$job" Restarts)
note "job $job: JobState=$state ExitCode=$code Restarts=$restarts"
[[ "$state" == COMPLETED && "$code" == 0:0 ]] || fail "job ended $state (ExitCode $code)"
[[ "$restarts" == 2 ]] || fail "expected 2 restarts, got $restarts"
total=$(status_field "$run" shards_total)
grep -q "^clipshard: requeued job $job: [0-9]*/$total shards done, [0-9]* left (requeued by Slurm)$" "$log" ||
  fail "no 'requeued by Slurm' line for the scontrol requeue"
grep -q "^clipshard: requeued job $job: [0-9]*/$total shards done, [0-9]* left$" "$log" ||
  fail "no self-requeue line for the USR1 stop"
b1=$(sed -n "s/^clipshard: job $job (restart 1).*shards done before: \([0-9]*\).*/\1/p" "$log")
b2=$(sed -n "s/^clipshard: job $job (restart 2).*shards done before: \([0-9]*\).*/\1/p" "$log")
note "shards done when restarted: $b1 (restart 1), $b2 (restart 2) of $total"
[[ -n "$b1" && -n "$b2" ]] && ((b1 > 0 && b2 > b1 && b2 < total)) ||
  fail "the restarts did not resume from saved shards (before: '$b1', '$b2')"
resumed=$(grep -c "^clipshard: .* shards; resuming: [1-9][0-9]* shards already finished" "$log")
((resumed == 2)) || fail "clipshard said 'resuming' $resumed times, expected 2 (one per restart)"
last=$(tail -n 1 "$log")
[[ "$last" == "clipshard: finished: "*"($total shards, $b2 of them done by earlier attempts)"* ]] || fail "last log line: '$last'"
[[ "$("$bin" status "$run")" == *'"finished"'* ]] || fail "status is not finished: $("$bin" status "$run")"
cmp "$work/plain/output.jsonl" "$run/output.jsonl" || fail "output.jsonl after two requeues differs from the plain run"
cmp <(sort "$work/plain/errors.jsonl") <(sort "$run/errors.jsonl") || fail "errors.jsonl differs from the plain run"
note "output.jsonl identical to the plain run ($(wc -l <"$run/output.jsonl") rows); errors.jsonl same records"
echo PASS
