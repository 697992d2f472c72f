# The same job with no launcher and under mpirun with 1, 2, 3 and 4 ranks: byte-identical outputs.
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
/usr/bin/python3 - "$WORK/np4/summary.json" <<'PY' || true
import json, sys; s = json.load(open(sys.argv[1])); print("per-rank shards:", {r: v.get("lines") for r, v in s["ranks"].items()})
PY
