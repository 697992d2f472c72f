# SIGKILL of a worker rank mid-run ends the job; rerunning the same command resumes and gives
# output identical to an uninterrupted run.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
make_dataset "$WORK/data" 240 "$CLIPSHARD_FIXTURES/images/large_3000x2000.jpg"
write_config "$WORK/ref.json" "$WORK/data/manifest.jsonl" "$WORK/ref"
"$CLIPSHARD_BINARY" run "$WORK/ref.json" || fail "reference run failed"

write_config "$WORK/run.json" "$WORK/data/manifest.jsonl" "$WORK/run"
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run "$WORK/run.json" > "$WORK/log1" 2>&1 &
launcher=$!
wait_for_shards "$WORK/run" 3 120
kill_rank_and_expect_failure 2 $launcher "$CLIPSHARD_BINARY run $WORK/run.json"
done_before=$(done_shards "$WORK/run")
total=30
echo "killed worker rank 2 (pid $victim): job ended with status $status after $done_before/$total shards"
(( done_before < total )) || fail "the run had already finished when the worker was killed"
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run "$WORK/run.json" > "$WORK/log2" 2>&1 || { cat "$WORK/log2"; fail "resume failed"; }
grep -q "resuming: $done_before shards already finished" "$WORK/log2" || { cat "$WORK/log2"; fail "resume did not reuse the finished shards"; }
same_file "$WORK/ref/output.jsonl" "$WORK/run/output.jsonl"
same_file "$WORK/ref/errors.jsonl" "$WORK/run/errors.jsonl"
echo "resumed: output identical to the uninterrupted run"
