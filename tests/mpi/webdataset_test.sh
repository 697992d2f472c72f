# WebDataset tar input end to end, as behind img2dataset: one corpus written both as tar shards and
# as loose files + manifests. The tar run's scores and kept rows equal the loose run's exactly, and
# its outputs are byte-identical as one process and under mpirun with 2 and 4 ranks.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
cd "$WORK"
/usr/bin/python3 "$CLIPSHARD_SOURCE_DIR/tests/common/make_webdataset.py" corpus data \
  "$CLIPSHARD_FIXTURES/images" 48 16
model=$CLIPSHARD_FIXTURES/models/tiny/hf
# tar_config FILE INPUT OUTDIR: evaluator + filter over img2dataset's keys.
tar_config() {
  cat > "$1" <<JSON
{
  "input": "$2", "output_dir": "$3", "device": "cpu",
  "batch_size": 4, "lines_per_shard": 6, "progress_interval_s": 1,
  "pipeline": [
    {"operator": "ImageCLIPEvaluator", "model_name": "$model",
     "input_image_key": "jpg", "input_text_key": "txt"},
    {"operator": "ImageClipFilter", "model_name": "$model",
     "input_image_key": "jpg", "input_caption_key": "txt", "threshold": 0.1}
  ]
}
JSON
}
tar_config tar.json 'data/shards/{00000..00002}.tar' tar
tar_config loose.json 'data/manifests/*.jsonl' loose
"$CLIPSHARD_BINARY" run tar.json > tar.log 2>&1 || { cat tar.log; fail "tar run failed"; }
"$CLIPSHARD_BINARY" run loose.json > loose.log 2>&1 || { cat loose.log; fail "loose run failed"; }
/usr/bin/python3 - <<'PY' || fail "tar and loose runs differ"
import json
tar = [json.loads(l) for l in open("tar/output.jsonl")]
loose = [json.loads(l) for l in open("loose/output.jsonl")]
assert len(tar) == len(loose) and len(tar) > 0, (len(tar), len(loose))
for t, l in zip(tar, loose):
    assert t["__key__"] == l["__key__"], (t["__key__"], l["__key__"])
    assert t["clip_score"] == l["clip_score"], (t["__key__"], t["clip_score"], l["clip_score"])
    assert t["caption"] == t["txt"] and t["status"] == "success"  # .json fields merged
    assert t["__url__"].startswith("data/shards/000"), t["__url__"]
    assert t["jpg"]["member"] == t["__key__"] + ".jpg"
assert open("tar/errors.jsonl").read() == "" and open("loose/errors.jsonl").read() == ""
print("tar run = loose run: %d rows kept, scores identical" % len(tar))
PY
for n in 2 4; do
  tar_config np$n.json 'data/shards/{00000..00002}.tar' np$n
  "${MPIRUN[@]}" -np $n "$CLIPSHARD_BINARY" run np$n.json > np$n.log 2>&1 || { cat np$n.log; fail "mpirun -np $n failed"; }
  same_file tar/output.jsonl np$n/output.jsonl
  same_file tar/errors.jsonl np$n/errors.jsonl
  echo "np=$n: identical to the single process ($(wc -l < np$n/output.jsonl) rows)"
done
