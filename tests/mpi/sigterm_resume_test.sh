# SIGTERM (and Slurm's SIGUSR1) make every rank finish its batch and exit 75; rerunning resumes to
# output identical to an uninterrupted run. Single process and under mpirun.
source "$(dirname "$0")/lib.sh"
make_dataset "$WORK/data" 240 "$CLIPSHARD_FIXTURES/images/large_3000x2000.jpg"
write_config "$WORK/ref.json" "$WORK/data/manifest.jsonl" "$WORK/ref"
"$CLIPSHARD_BINARY" run "$WORK/ref.json" || fail "reference run failed"

# 1. No launcher, SIGTERM.
write_config "$WORK/a.json" "$WORK/data/manifest.jsonl" "$WORK/a"
"$CLIPSHARD_BINARY" run "$WORK/a.json" > "$WORK/log-a" 2>&1 &
pid=$!
wait_for_shards "$WORK/a" 2 120
kill -TERM $pid
set +e; wait $pid; status=$?; set -e
[[ $status == 75 ]] || { cat "$WORK/log-a"; fail "SIGTERM: exit status $status, expected 75"; }
grep -q "run the same command again to resume" "$WORK/log-a" || fail "no resume hint"
state=$("$CLIPSHARD_BINARY" status "$WORK/a")
echo "after SIGTERM: $state"
[[ $state == *'"state":"partial"'* ]] || fail "status is not partial"
"$CLIPSHARD_BINARY" run "$WORK/a.json" > "$WORK/log-a2" 2>&1 || fail "resume failed"
same_file "$WORK/ref/output.jsonl" "$WORK/a/output.jsonl"

# 2. mpirun, SIGUSR1 to every rank (what srun forwards from sbatch --signal=B:USR1@T).
if command -v mpirun >/dev/null; then
  write_config "$WORK/b.json" "$WORK/data/manifest.jsonl" "$WORK/b"
  "${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run "$WORK/b.json" > "$WORK/log-b" 2>&1 &
  launcher=$!
  wait_for_shards "$WORK/b" 2 120
  pkill -USR1 -f "$CLIPSHARD_BINARY run $WORK/b.json"
  set +e; wait $launcher; status=$?; set -e
  [[ $status == 75 ]] || { cat "$WORK/log-b"; fail "SIGUSR1 under mpirun: exit status $status, expected 75"; }
  "${MPIRUN[@]}" -np 2 "$CLIPSHARD_BINARY" run "$WORK/b.json" > "$WORK/log-b2" 2>&1 || fail "resume failed"
  same_file "$WORK/ref/output.jsonl" "$WORK/b/output.jsonl"
  echo "SIGUSR1 under mpirun: exit 75, resumed with a different rank count, identical output"
fi
