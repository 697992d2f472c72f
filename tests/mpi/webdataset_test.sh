# WebDataset tar input end to end, as behind img2dataset: one corpus written both as tar shards and
# as loose files + manifests. The tar run's scores and kept rows equal the loose run's exactly, and
# its outputs are byte-identical as one process and under mpirun with 2 and 4 ranks, filtered tar
# shards (webdataset_output) included: kept samples only, members copied byte for byte, the score
# added to each sample's .json.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
cd "$WORK"
/usr/bin/python3 "$CLIPSHARD_SOURCE_DIR/tests/common/make_webdataset.py" corpus data \
  "$CLIPSHARD_FIXTURES/images" 48 16
model=$CLIPSHARD_FIXTURES/models/tiny/hf
# tar_config FILE INPUT OUTDIR [EXTRA]: evaluator + filter over img2dataset's keys.
tar_config() {
  cat > "$1" <<JSON
{
  "input": "$2", "output_dir": "$3", "device": "cpu", ${4:-}
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
tar_config tar.json 'data/shards/{00000..00002}.tar' tar '"webdataset_output": "tar/wds",'
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
import tarfile
kept = {}
for row in tar:
    kept.setdefault(row["__url__"].split("/")[-1], []).append(row)
written = 0
for name in ("00000.tar", "00001.tar", "00002.tar"):
    src = tarfile.open("data/shards/" + name)
    out = tarfile.open("tar/wds/" + name)
    members = out.getmembers()
    rows = kept.get(name, [])
    assert [m.name for m in members] == [n for r in rows for n in
                                         (r["__key__"] + ".jpg", r["__key__"] + ".txt", r["__key__"] + ".json")]
    for row in rows:
        k = row["__key__"]
        for ext in ("jpg", "txt"):
            assert out.extractfile(k + "." + ext).read() == src.extractfile(k + "." + ext).read()
        meta = json.loads(out.extractfile(k + ".json").read())
        orig = json.loads(src.extractfile(k + ".json").read())
        assert meta["clip_score"] == row["clip_score"] and meta["caption"] == orig["caption"], meta
        written += 1
print("webdataset_output: %d kept samples in 3 tars, members identical, scores in .json" % written)
PY
for n in 2 4; do
  tar_config np$n.json 'data/shards/{00000..00002}.tar' np$n "\"webdataset_output\": \"np$n/wds\","
  "${MPIRUN[@]}" -np $n "$CLIPSHARD_BINARY" run np$n.json > np$n.log 2>&1 || { cat np$n.log; fail "mpirun -np $n failed"; }
  same_file tar/output.jsonl np$n/output.jsonl
  same_file tar/errors.jsonl np$n/errors.jsonl
  for t in 00000 00001 00002; do same_file tar/wds/$t.tar np$n/wds/$t.tar; done
  echo "np=$n: identical to the single process ($(wc -l < np$n/output.jsonl) rows)"
done
