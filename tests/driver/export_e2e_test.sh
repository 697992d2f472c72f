#!/usr/bin/env bash
# `clipshard export` end to end: a real run (tiny CLIP and Long-CLIP models, CLIP evaluator, filter,
# Long-CLIP evaluator, several shards, bad rows) is exported and checked with numpy: shapes, dtypes,
# L2 norms, rows aligned with output.jsonl (bad rows left out), cos(img, text) reproducing each
# row's score (1e-5 in float32, 1e-3 in float16), chunk files concatenating to the whole,
# --image-only / --text-only, --op, the Python loader (python/clipshard/embeddings.py). Then the
# bad inputs, each an error (exit 1) that leaves neither DIR nor a temporary directory behind:
# an unfinished run, a directory that is not a run, an existing non-empty DIR, damaged parts, a
# disk that fills (a 64 KiB tmpfs when mount is allowed, else a file size limit).
set -euo pipefail
: "${CLIPSHARD_BINARY:?}" "${CLIPSHARD_SOURCE_DIR:?}" "${CLIPSHARD_FIXTURES:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clipshard-export.XXXXXX")
small=""
cleanup() { [[ -n $small ]] && umount "$small" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PY=/usr/bin/python3

# 24 rows over the example images (distinct captions), a missing image and an empty caption.
mkdir -p "$WORK/data"
cp -r "$CLIPSHARD_SOURCE_DIR/examples/images" "$WORK/data/images"
images=(photo_640x480.jpg portrait_333x500.jpg panorama_1024x200.jpg square_224x224.jpg
        palette_256x192.png gray_400x300.jpg rgba_300x300.png q444_300x220.jpg)
for ((i = 0; i < 24; i++)); do
  case $i in
    5) echo '{"id": '$i', "image": "images/missing.jpg", "caption": "missing file"}' ;;
    9) echo '{"id": '$i', "image": "images/'${images[0]}'", "caption": "  "}' ;;
    14) echo '{not json' ;;
    *) echo '{"id": '$i', "image": "images/'${images[i % 8]}'", "caption": "picture '$i' of a thing"}' ;;
  esac
done > "$WORK/data/m.jsonl"
cat > "$WORK/config.json" <<JSON
{"input": ["$WORK/data/m.jsonl"], "output_dir": "$WORK/run", "device": "cpu", "batch_size": 4,
 "lines_per_shard": 5, "progress_interval_s": 0,
 "pipeline": [
   {"operator": "ImageCLIPEvaluator", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
    "input_image_key": "image", "input_text_key": "caption"},
   {"operator": "ImageClipFilter", "model_name": "$CLIPSHARD_FIXTURES/models/tiny/hf",
    "input_image_key": "image", "input_caption_key": "caption", "top_fraction": 0.6},
   {"operator": "ImageLongCLIPEvaluator", "model_name": "$CLIPSHARD_FIXTURES/models/longclip-tiny/model.pt",
    "input_image_key": "image", "input_text_key": "caption"}]}
JSON
"$CLIPSHARD_BINARY" run "$WORK/config.json" 2> "$WORK/run.log" || { cat "$WORK/run.log"; fail "run failed"; }
run=$WORK/run
# The same rows without the filter: bad rows stay in output.jsonl (score 0.0).
"$CLIPSHARD_BINARY" run "$WORK/config.json" --set output_dir="\"$WORK/run2\"" \
    --set pipeline='[{"operator": "ImageCLIPEvaluator", "model_name": "'"$CLIPSHARD_FIXTURES"'/models/tiny/hf",
                      "input_image_key": "image", "input_text_key": "caption"}]' \
    2> "$WORK/run2.log" || { cat "$WORK/run2.log"; fail "run without the filter failed"; }

export_ok() {  # export_ok ARGS...: runs export, must succeed
  "$CLIPSHARD_BINARY" export "$@" 2> "$WORK/export.log" || { cat "$WORK/export.log"; fail "export $* failed"; }
}
export_ok "$run" --to "$WORK/full"
export_ok "$run" --to "$WORK/chunked" --rows-per-file 2
export_ok "$run" --to "$WORK/half" --fp16 --rows-per-file 3
export_ok "$run" --to "$WORK/img" --image-only
export_ok "$run" --to "$WORK/txt" --text-only
export_ok "$run" --to "$WORK/long" --op 2 --rows-per-file 4
export_ok "$WORK/run2" --to "$WORK/nofilter" --rows-per-file 5
grep -q "exported" "$WORK/export.log" || fail "no summary line: $(cat "$WORK/export.log")"

PYTHONPATH=$CLIPSHARD_SOURCE_DIR/python $PY - "$WORK" <<'PY' || fail "numpy checks"
import glob, json, math, os, sys
import numpy as np
from clipshard.embeddings import load_embeddings

work = sys.argv[1]
output = [json.loads(l) for l in open(os.path.join(work, "run", "output.jsonl"))]
assert len(output) > 4, len(output)

def parts(d, folder, prefix, suffix):
    files = glob.glob(os.path.join(work, d, folder, prefix + "_*" + suffix))
    return sorted(files, key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))

def load(d):
    img = [np.load(p) for p in parts(d, "img_emb", "img_emb", ".npy")]
    txt = [np.load(p) for p in parts(d, "text_emb", "text_emb", ".npy")]
    meta = [[json.loads(l) for l in open(p)] for p in parts(d, "metadata", "metadata", ".jsonl")]
    return img, txt, meta

def check(d, key, dtype, tol, rows_per_file=None):
    img, txt, meta = load(d)
    rows = [r for m in meta for r in m]
    # The rows with embeddings are the output rows whose score is not a bad row's 0.0, in order.
    want = [r for r in output if r[key] != 0.0]
    assert rows == want, (d, len(rows), len(want))
    a, b = np.concatenate(img), np.concatenate(txt)
    assert a.dtype == dtype and b.dtype == dtype, (d, a.dtype)
    assert a.shape == b.shape == (len(rows), a.shape[1]), (d, a.shape, b.shape, len(rows))
    for arrays in (img, txt):
        assert [len(x) for x in arrays] == [len(m) for m in meta], d
    if rows_per_file:
        assert len(meta) == math.ceil(len(rows) / rows_per_file), (d, len(meta))
        assert all(len(m) == rows_per_file for m in meta[:-1]), d
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    for n in norms:
        assert np.all(np.abs(n - 1) < max(tol, 1e-5)), (d, n)
    score = np.clip(((a64 * b64).sum(1) + 1) / 2, 0, 1)
    err = np.abs(score - np.array([r[key] for r in rows])).max()
    assert err <= tol, (d, key, err)
    print(f"{d}: {len(rows)} rows in {len(meta)} file(s), dim {a.shape[1]}, {dtype}, "
          f"max |score error| {err:.2e}")
    return a, b, rows

full_a, full_b, full_rows = check("full", "clip_score", np.float32, 1e-5)
assert len(full_rows) >= 3, "too few rows to check chunking"
a, b, rows = check("chunked", "clip_score", np.float32, 1e-5, rows_per_file=2)
assert np.array_equal(a, full_a) and np.array_equal(b, full_b) and rows == full_rows
check("half", "clip_score", np.float16, 1e-3, rows_per_file=3)
check("long", "longclip_score", np.float32, 1e-5, rows_per_file=4)
# --image-only / --text-only: one folder, the same rows and values.
img, txt, meta = load("img")
assert not txt and not os.path.exists(os.path.join(work, "img", "text_emb"))
assert np.array_equal(np.concatenate(img), full_a)
img, txt, meta = load("txt")
assert not img and np.array_equal(np.concatenate(txt), full_b)
# The loader of the Python package reads every variant.
e = load_embeddings(os.path.join(work, "chunked"))
assert np.array_equal(e.image, full_a) and np.array_equal(e.text, full_b)
assert e.metadata == full_rows
e = load_embeddings(os.path.join(work, "full"), mmap=True)
assert np.array_equal(e.image, full_a)
assert load_embeddings(os.path.join(work, "img")).text is None
manifest = json.load(open(os.path.join(work, "chunked", "export.json")))
assert manifest["rows"] == len(full_rows), manifest
assert manifest["files"] == math.ceil(len(full_rows) / 2), manifest
assert manifest["operator"] == "ImageCLIPEvaluator" and manifest["dtype"] == "float32"
# Without a filter the bad rows (score 0.0) are in output.jsonl: they have no embeddings.
output = [json.loads(l) for l in open(os.path.join(work, "run2", "output.jsonl"))]
_, _, rows = check("nofilter", "clip_score", np.float32, 1e-5, rows_per_file=5)
assert len(rows) == len(output) - 2, (len(rows), len(output))
try:
    import pandas
    df = pandas.read_json(os.path.join(work, "full", "metadata", "metadata_0.jsonl"), lines=True)
    assert len(df) == len(full_rows)
except ImportError:
    print("pandas not installed: read_json(lines=True) not checked")
PY

# Bad inputs: exit 1, a message naming the problem, and nothing left at DIR or DIR.tmp-*.
export_fails() {  # export_fails WANT RUN_DIR ARGS...
  local want=$1; shift
  local rc=0 err
  err=$("$CLIPSHARD_BINARY" export "$@" 2>&1) || rc=$?
  [[ $rc == 1 ]] || fail "export $* exited $rc, expected 1: $err"
  grep -qF -- "$want" <<<"$err" || fail "export $*: message lacks \"$want\": $err"
  ls -d "$WORK"/bad* 2>/dev/null | grep -q . && fail "export $* left $(ls -d "$WORK"/bad*)"
  return 0
}
export_fails "not a clipshard run directory" "$WORK/data" --to "$WORK/bad"
export_fails "no run directory" "$WORK/nowhere" --to "$WORK/bad"
export_fails "exists and is not empty" "$run" --to "$WORK/full"
export_fails "not an earlier clipshard export" "$run" --to "$WORK/data" --force
export_fails "exclude each other" "$run" --to "$WORK/bad" --image-only --text-only
export_fails "the pipeline has 3 step(s)" "$run" --to "$WORK/bad" --op 3
rc=0; "$CLIPSHARD_BINARY" export "$run" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "export without --to exited $rc, expected 2"
# --force replaces an earlier export.
export_ok "$run" --to "$WORK/chunked" --force
[[ $(ls "$WORK/chunked/img_emb" | wc -l) == 1 ]] || fail "--force left old chunk files"

cp -r "$run" "$WORK/copy"
mv "$WORK/copy/summary.json" "$WORK/copy/summary.json.away"
export_fails "is not finished" "$WORK/copy" --to "$WORK/bad"
mv "$WORK/copy/summary.json.away" "$WORK/copy/summary.json"
emb=$(ls "$WORK/copy/parts/"*.emb.h5 | tail -1)
cp "$emb" "$WORK/emb.h5"; head -c 3000 "$WORK/emb.h5" > "$emb"
export_fails "$emb" "$WORK/copy" --to "$WORK/bad"
cp "$WORK/emb.h5" "$emb"
keys=$(ls "$WORK/copy/parts/"*.rowkeys.bin | tail -1)
rm "$keys"
export_fails "--restart" "$WORK/copy" --to "$WORK/bad"

# A disk that fills: a 64 KiB tmpfs nearly full (when mount is allowed: root), and a 1 KiB file
# size limit (writes fail with EFBIG, SIGXFSZ ignored). The export must fail cleanly in both.
mkdir -p "$WORK/small"
if mount -t tmpfs -o size=64k tmpfs "$WORK/small" 2>/dev/null; then
  small=$WORK/small
  # Fill the tmpfs but for a few KiB, so the export's files do not fit.
  head -c 56k /dev/zero > "$small/filler" 2>/dev/null || true
  rc=0; err=$("$CLIPSHARD_BINARY" export "$run" --to "$small/bad" 2>&1) || rc=$?
  [[ $rc == 1 ]] || fail "export to a full tmpfs exited $rc: $err"
  grep -qE "No space left|cannot" <<<"$err" || fail "full disk message: $err"
  [[ -z $(ls "$small" | grep -v filler) ]] || fail "full tmpfs: left $(ls "$small")"
  echo "disk full (tmpfs): $err"
else
  echo "mount not allowed: the full disk is checked with the file size limit only"
fi
rc=0
err=$(trap '' XFSZ; ulimit -f 1; "$CLIPSHARD_BINARY" export "$run" --to "$WORK/bad" 2>&1) || rc=$?
[[ $rc == 1 ]] || fail "export over the file size limit exited $rc: $err"
ls -d "$WORK"/bad* 2>/dev/null | grep -q . && fail "file size limit: left $(ls -d "$WORK"/bad*)"
echo "file size limit: $err"
echo PASS
