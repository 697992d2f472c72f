#!/usr/bin/env bash
# The demo job (configs/demo.json) submitted with sbatch through slurm/submit.sh — 1 driver + 2 CPU
# workers on one node of a real Slurm — must finish (COMPLETED, exit 0, "clipshard: finished" as the
# log's last line) with an output.jsonl byte-identical to a plain `clipshard run` of the same config.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
slurm_test_setup
cd "$src" || fail "no source dir $src"   # the demo config's paths are relative to the repository root

note "plain run"
"$bin" run configs/demo.json --set output_dir="$work/plain" >"$work/plain.log" 2>&1 ||
  { cat "$work/plain.log"; fail "plain clipshard run failed (exit $?)"; }

note "sbatch: 1 node, 2 CPU workers + the driver"
submit --nodes 1 --workers-per-node 2 --cpus-per-worker 1 --job-name demo -- \
  configs/demo.json --set output_dir="$work/slurm"
log="$work/logs/demo-$job.out"
wait_job_state "$job" 300 COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY
show_log "$log"
state=$(job_field "$job" JobState) code=$(job_field "$job" ExitCode)
note "job $job: JobState=$state ExitCode=$code"
[[ "$state" == COMPLETED && "$code" == 0:0 ]] || fail "job $job ended $state (ExitCode $code)"
last=$(tail -n 1 "$log")
[[ "$last" == "clipshard: finished: "* ]] || fail "last log line is not the finished line: '$last'"
[[ $(grep -c '^clipshard-rank: rank [0-9]* (worker)' "$log") == 2 ]] || fail "expected 2 worker ranks in the log"
[[ $(grep -c '^clipshard-rank: rank 0 (driver)' "$log") == 1 ]] || fail "expected 1 driver rank in the log"
for f in output.jsonl errors.jsonl summary.json; do [[ -f "$work/slurm/$f" ]] || fail "missing $f in the run dir"; done
cmp "$work/plain/output.jsonl" "$work/slurm/output.jsonl" ||
  fail "output.jsonl under Slurm differs from the plain run"
note "output.jsonl identical to the plain run ($(wc -l <"$work/slurm/output.jsonl") rows, $(wc -c <"$work/slurm/output.jsonl") bytes)"
note "status: $("$bin" status "$work/slurm")"
echo PASS
