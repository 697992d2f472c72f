# Re-filtering under mpirun, WebDataset tars in and filtered tars out: a finished 3-rank run rerun
# with another threshold loads no model (the model's weights are deleted before the rerun, so a
# worker that built its processor would fail the job) and writes exactly the output.jsonl,
# errors.jsonl and webdataset_output tars of a fresh run with that threshold; the summary says it
# re-filtered, from which settings. A changed model is still refused.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
cd "$WORK"
/usr/bin/python3 "$CLIPSHARD_SOURCE_DIR/tests/common/make_webdataset.py" corpus data \
  "$CLIPSHARD_FIXTURES/images" 48 16
cp -r "$CLIPSHARD_FIXTURES/models/tiny/hf" model
# tar_config FILE OUTDIR THRESHOLD: evaluator + filter over img2dataset's keys, filtered tars out.
tar_config() {
  cat > "$1" <<JSON
{
  "input": "data/shards/{00000..00002}.tar", "output_dir": "$2", "device": "cpu",
  "webdataset_output": "$2/wds", "batch_size": 4, "lines_per_shard": 6, "progress_interval_s": 1,
  "pipeline": [
    {"operator": "ImageCLIPEvaluator", "model_name": "$WORK/model",
     "input_image_key": "jpg", "input_text_key": "txt"},
    {"operator": "ImageClipFilter", "model_name": "$WORK/model",
     "input_image_key": "jpg", "input_caption_key": "txt", "threshold": $3}
  ]
}
JSON
}
tar_config fresh.json fresh 0.2
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run fresh.json > fresh.log 2>&1 || { cat fresh.log; fail "fresh run failed"; }
tar_config run.json run 0.05
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run run.json > first.log 2>&1 || { cat first.log; fail "first run failed"; }
[[ $(wc -l < run/output.jsonl) != $(wc -l < fresh/output.jsonl) ]] ||
  fail "thresholds 0.05 and 0.2 keep as many rows: the test proves nothing"

rm model/model.safetensors  # a worker that loaded the model now fails the job
tar_config run.json run 0.2
"${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run run.json > refilter.log 2>&1 || { cat refilter.log; fail "re-filter failed"; }
grep -q "re-filtering the stored similarities" refilter.log || { cat refilter.log; fail "no re-filter message"; }
same_file fresh/output.jsonl run/output.jsonl
same_file fresh/errors.jsonl run/errors.jsonl
for t in 00000 00001 00002; do same_file fresh/wds/$t.tar run/wds/$t.tar; done
/usr/bin/python3 - <<'PY' || fail "summary of the re-filter"
import json
s = json.load(open("run/summary.json"))
f = json.load(open("fresh/summary.json"))
assert s["refiltered"] is True and s["models_loaded"] is False, s
assert s["refiltered_from"]["pipeline"][1]["threshold"] == 0.05, s["refiltered_from"]
assert s["shards"]["finished_this_run"] == 0
for k in ("rows_in", "rows_out", "error_records", "errors_by_reason", "operators"):
    assert s[k] == f[k], (k, s[k], f[k])
assert f["refiltered"] is False and f["models_loaded"] is True
print("re-filter under mpirun: %d rows kept, same bytes as a fresh run" % s["rows_out"])
PY

sed -i "s#\"model_name\": \"$WORK/model\"#\"model_name\": \"$CLIPSHARD_FIXTURES/models/micro/hf\"#" run.json
if "${MPIRUN[@]}" -np 3 "$CLIPSHARD_BINARY" run run.json > refused.log 2>&1; then
  fail "a changed model was not refused"
fi
grep -q "different config" refused.log || { cat refused.log; fail "no 'different config' message"; }
same_file fresh/output.jsonl run/output.jsonl
echo "a changed model is refused"
