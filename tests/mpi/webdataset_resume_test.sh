# A tar run whose worker rank is killed with SIGKILL resumes when rerun and gives outputs identical
# to an uninterrupted run (tar shards are planned by sample, like manifest lines), filtered tar
# shards (webdataset_output) included.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
cd "$WORK"
/usr/bin/python3 "$CLIPSHARD_SOURCE_DIR/tests/common/make_webdataset.py" corpus data \
  "$CLIPSHARD_FIXTURES/images" 120 40 large_3000x2000.jpg
model=$CLIPSHARD_FIXTURES/models/tiny/hf
tar_config() {
  cat > "$1" <<JSON
{
  "input": "data/shards/{00000..00002}.tar", "output_dir": "$2", "device": "cpu",
  "webdataset_output": "$2/wds",
  "batch_size": 4, "lines_per_shard": 8, "progress_interval_s": 1,
  "pipeline": [{"operator": "ImageCLIPEvaluator", "model_name": "$model",
                "input_image_key": "jpg", "input_text_key": "txt"}]
}
JSON
}
tar_config ref.json ref
"$CLIPSHARD_BINARY" run ref.json > ref.log 2>&1 || { cat ref.log; fail "reference run failed"; }
tar_config run.json run
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run run.json > log1 2>&1 &
launcher=$!
wait_for_shards run 3 300
kill_rank_and_expect_failure 2 $launcher "$CLIPSHARD_BINARY run run.json"
done_before=$(done_shards run)
echo "killed worker rank 2: job ended with status $status after $done_before/15 shards"
(( done_before < 15 )) || fail "the run had already finished when the worker was killed"
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run run.json > log2 2>&1 || { cat log2; fail "resume failed"; }
grep -q "resuming: $done_before shards already finished" log2 || { cat log2; fail "resume did not reuse the finished shards"; }
same_file ref/output.jsonl run/output.jsonl
same_file ref/errors.jsonl run/errors.jsonl
for t in 00000 00001 00002; do same_file ref/wds/$t.tar run/wds/$t.tar; done
echo "resumed: output identical to the uninterrupted run ($(wc -l < run/output.jsonl) rows)"
