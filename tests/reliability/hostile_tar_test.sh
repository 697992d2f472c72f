# Hostile WebDataset tars end to end: truncated (mid-member, mid-header), corrupt checksum, zero-byte
# image, no image / no caption, non-UTF-8 caption, malformed .json, duplicate keys, directory /
# symlink / hard link members, pax and GNU long names, a non-tar named .tar. Every sample ends up
# exactly once as a clean output row or as an error record carrying its key and sample index, and
# the run finishes (exit 0). The expected reasons come from tests/common/make_webdataset.py. A JSONL
# manifest given with the tars is read in the same run, its rows after the tars' in input order.
source "$(dirname "$0")/../mpi/lib.sh"
cd "$WORK"
/usr/bin/python3 "$CLIPSHARD_SOURCE_DIR/tests/common/make_webdataset.py" hostile hostile \
  "$CLIPSHARD_FIXTURES/images/photo_640x480.jpg"
printf '{"jpg": "%s", "txt": "a loose image"}\n{"jpg": "missing.jpg", "txt": "no file"}\n' \
  "$CLIPSHARD_FIXTURES/images/photo_640x480.jpg" > loose.jsonl
"$CLIPSHARD_BINARY" run --op ImageCLIPEvaluator --model "$CLIPSHARD_FIXTURES/models/tiny/hf" \
  --input 'hostile/*.tar' --input loose.jsonl --param 'input_image_key=jpg;png' --param input_text_key=txt \
  --output-dir run --device cpu > log 2>&1 || { cat log; fail "the run did not finish"; }
/usr/bin/python3 - <<'PY' || fail "rows or error records differ from the expected ones"
import json, os
expected = json.load(open("hostile/expected.json"))
outputs = [json.loads(l) for l in open("run/output.jsonl")]
errors = [json.loads(l) for l in open("run/errors.jsonl")]
# The manifest's two rows come last (input order); its error record has no "sample".
loose_rows, outputs = outputs[-2:], outputs[:-2]
loose_errors, errors = errors[-1:], errors[:-1]
assert [r["txt"] for r in loose_rows] == ["a loose image", "no file"], loose_rows
assert loose_rows[0]["clip_score"] > 0 and loose_rows[1]["clip_score"] == 0.0, loose_rows
assert loose_errors[0]["reason"] == "file_not_found" and "sample" not in loose_errors[0], loose_errors
assert all("__url__" in r for r in outputs)
err = {(e["manifest"], e["line"]): e for e in errors}
out = {}
for r in outputs:
    out.setdefault((r["__url__"], r["__key__"]), []).append(r)
bad = 0
counts = {}
for case in sorted(expected):
    url = "hostile/%s.tar" % case
    path = os.path.abspath(url)
    keys_seen = {}
    for index, (key, reason) in enumerate(expected[case], 1):
        counts[reason] = counts.get(reason, 0) + 1
        e = err.pop((path, index), None)
        rows = out.get((url, key), [])
        n = keys_seen.get(key, 0)
        keys_seen[key] = n + 1
        row = rows[n] if n < len(rows) else None
        if reason == "ok":
            ok = e is None and row is not None and row["clip_score"] > 0.0
        else:
            ok = e is not None and e["reason"] == reason and e["sample"] == key
            # Broken samples have no output row; bad rows of an evaluator score 0.0.
            if reason in ("missing_key", "empty_file"):
                ok = ok and row is not None and row["clip_score"] == 0.0
            else:
                ok = ok and row is None
        if not ok:
            bad += 1
            print("MISMATCH", case, index, key, reason, "error:", e, "row:", row and row.get("clip_score"))
if err:
    bad += len(err)
    print("UNEXPECTED error records:", list(err.values()))
total = sum(len(v) for v in expected.values())
if len(outputs) != sum(1 for c in expected.values() for k, r in c if r in ("ok", "missing_key", "empty_file")):
    bad += 1
    print("output rows:", len(outputs))
print("hostile tars: %d cases, %d samples, by outcome %s" % (len(expected), total, json.dumps(counts, sort_keys=True)))
raise SystemExit(1 if bad else 0)
PY
echo "every hostile sample accounted for exactly once"
