# The same job with no launcher and under mpirun with 1, 2, 3 and 4 ranks: byte-identical outputs
# (and `clipshard export` of the plain and the 4-rank run: byte-identical embeddings).
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || skip "mpirun not installed"
make_dataset "$WORK/data" 60 "$CLIPSHARD_FIXTURES/images/photo_640x480.jpg"
write_config "$WORK/plain.json" "$WORK/data/manifest.jsonl" "$WORK/plain"
"$CLIPSHARD_BINARY" run "$WORK/plain.json" || fail "plain run failed"
[[ -s $WORK/plain/output.jsonl ]] || fail "no output"
for n in 1 2 3 4; do
  write_config "$WORK/np$n.json" "$WORK/data/manifest.jsonl" "$WORK/np$n"
  "${MPIRUN[@]}" -np $n "$CLIPSHARD_BINARY" run "$WORK/np$n.json" || fail "mpirun -np $n failed"
  same_file "$WORK/plain/output.jsonl" "$WORK/np$n/output.jsonl"
  same_file "$WORK/plain/errors.jsonl" "$WORK/np$n/errors.jsonl"
  echo "np=$n: identical ($(wc -l < "$WORK/np$n/output.jsonl") rows, $(wc -l < "$WORK/np$n/errors.jsonl") errors)"
done
# The exported embeddings do not depend on the rank count either (export.json names the run).
for run in plain np4; do
  "$CLIPSHARD_BINARY" export "$WORK/$run" --to "$WORK/export-$run" --rows-per-file 7 ||
    fail "export of $run failed"
done
diff -r --exclude export.json "$WORK/export-plain" "$WORK/export-np4" >/dev/null ||
  fail "the exports of the plain and the 4-rank run differ"
echo "export: identical ($(ls "$WORK/export-np4/img_emb" | wc -l) files per folder)"
/usr/bin/python3 - "$WORK/np4/summary.json" <<'PY' || true
import json, sys; s = json.load(open(sys.argv[1])); print("per-rank shards:", {r: v.get("lines") for r, v in s["ranks"].items()})
PY
