# Storage faults and a second run. Each fault ends the run with exit 1 and a message that
# says what happened; the run directory never holds a half-written output (output.jsonl,
# errors.jsonl and summary.json are all-or-nothing); once the cause is gone, rerunning the same
# command resumes and the outputs are byte-identical to an uninterrupted run.
#  1. a second run on a directory in use: refused with the lock message, the first run unharmed;
#  2. a file size limit (RLIMIT_FSIZE, `ulimit -f`, SIGXFSZ ignored so writes fail with EFBIG)
#     that the merge runs into;
#  3. a full disk: the run directory on a small tmpfs (needs root and mount; skipped otherwise)
#     that the shards' parts run into;
#  4. the run directory becoming read-only mid-run (as an unprivileged user when we are root).
source "$(dirname "$0")/../mpi/lib.sh"
t0=$SECONDS
done_count() { local n=0; [[ -d $1/parts ]] && n=$(find "$1/parts" -maxdepth 1 -name '*.done.json' | wc -l); echo "$n"; }
wait_done() {  # wait_done DIR N PID: until DIR has N finished shards (fails if PID exits first)
  local t
  for ((t = 0; t < 1200; t++)); do
    (( $(done_count "$1") >= $2 )) && return 0
    kill -0 "$3" 2>/dev/null || fail "the run ended before $2 shards were finished in $1"
    sleep 0.1
  done
  fail "no $2 finished shards in $1 after 120 s"
}
no_half_output() {  # after a failed run: no summary, and a merged output there is whole
  local f
  [[ ! -e $1/summary.json ]] || fail "$1 has a summary.json after a failed run"
  for f in output.jsonl errors.jsonl; do
    if [[ -e $1/$f ]]; then same_file "$WORK/ref/$f" "$1/$f"; fi
  done
  return 0
}
identical() {
  same_file "$WORK/ref/output.jsonl" "$1/output.jsonl"
  same_file "$WORK/ref/errors.jsonl" "$1/errors.jsonl"
}
cfg() {
  cat > "$1" <<JSON
{"input": ["$WORK/data/manifest.jsonl"], "output_dir": "$2", "device": "cpu", "batch_size": 4,
 "lines_per_shard": 6, "progress_interval_s": 0, "decode_threads": 1, "torch_threads": 1, ${3:-}
 "pipeline": [{"operator": "ImageCLIPEvaluator", "model_name": "$KIT/model",
               "input_image_key": "image", "input_text_key": "caption"}]}
JSON
}

# Everything the runs read (binary, model, image) is copied under $WORK, world-readable, and every
# case uses those copies: case 4 runs as an unprivileged user, who cannot enter a clone that lives in
# a directory only its owner can enter (/root, most home directories, mktemp -d).
chmod 755 "$WORK"
KIT=$WORK/kit
mkdir -p "$KIT"
cp "$CLIPSHARD_BINARY" "$KIT/clipshard"
cp -r "$CLIPSHARD_FIXTURES/models/tiny/hf" "$KIT/model"
cp "$CLIPSHARD_FIXTURES/images/large_3000x2000.jpg" "$KIT/large.jpg"
CLIPSHARD_BINARY=$KIT/clipshard
make_dataset "$WORK/data" 48 "$KIT/large.jpg"
chmod -R a+rX "$WORK"  # whatever the umask
cfg "$WORK/ref.json" "$WORK/ref"
"$CLIPSHARD_BINARY" run "$WORK/ref.json" 2> "$WORK/ref.log" || { cat "$WORK/ref.log"; fail "reference run failed"; }
total=$(done_count "$WORK/ref")
out_bytes=$(stat -c %s "$WORK/ref/output.jsonl")
echo "reference: $total shards, output.jsonl $out_bytes bytes ($((SECONDS - t0)) s)"
faults=0

# 1. Two runs on one directory.
cfg "$WORK/lock.json" "$WORK/lock"
"$CLIPSHARD_BINARY" run "$WORK/lock.json" 2> "$WORK/lock1.log" &
first=$!
wait_done "$WORK/lock" 1 $first
kill -STOP $first  # keep it mid-run (holding the lock) however fast this machine is
set +e; "$CLIPSHARD_BINARY" run "$WORK/lock.json" 2> "$WORK/lock2.log"; status=$?; set -e
kill -CONT $first
[[ $status == 1 ]] || fail "second run: exit $status, expected 1"
grep -q "another clipshard run (pid $first) is using $WORK/lock" "$WORK/lock2.log" ||
  { cat "$WORK/lock2.log"; fail "no lock message naming the first run"; }
wait $first || { cat "$WORK/lock1.log"; fail "the first run failed"; }
identical "$WORK/lock"
faults=$((faults + 1))
echo "1. second run refused: $(grep -o 'another clipshard run.*' "$WORK/lock2.log" | head -c 120)"

# 2. File size limit: the shards' parts fit, the merged output.jsonl does not (no embedding cache,
#    whose parts would hit the limit first): a failure in the merge.
cfg "$WORK/fsize.json" "$WORK/fsize" '"embedding_cache": {"enabled": false},'
limit_blocks=$(( out_bytes / 2 / 1024 ))  # ulimit -f counts 1024-byte blocks
set +e
( ulimit -f "$limit_blocks"; trap '' XFSZ; exec "$CLIPSHARD_BINARY" run "$WORK/fsize.json" ) 2> "$WORK/fsize.log"
status=$?
set -e
[[ $status == 1 ]] || { cat "$WORK/fsize.log"; fail "file size limit: exit $status, expected 1"; }
grep -q "output.jsonl.*File too large" "$WORK/fsize.log" || { cat "$WORK/fsize.log"; fail "file size limit: no clear message"; }
no_half_output "$WORK/fsize"
"$CLIPSHARD_BINARY" run "$WORK/fsize.json" 2> "$WORK/fsize2.log" || { cat "$WORK/fsize2.log"; fail "resume after the size limit failed"; }
identical "$WORK/fsize"
faults=$((faults + 1))
echo "2. file size limit in the merge after $(done_count "$WORK/fsize")/$total shards: $(grep -o 'error: .*' "$WORK/fsize.log" | head -c 160)"

# 3. Full disk: a tmpfs too small for the whole run; then grown, and the run resumed.
mnt="$WORK/tmpfs"
mkdir -p "$mnt"
if [[ $(id -u) == 0 ]] && mount -t tmpfs -o size=256k tmpfs "$mnt" 2>/dev/null; then
  trap 'umount "$mnt" 2>/dev/null || true; rm -rf "$WORK"' EXIT
  cfg "$WORK/full.json" "$mnt/run"
  set +e; "$CLIPSHARD_BINARY" run "$WORK/full.json" 2> "$WORK/full.log"; status=$?; set -e
  [[ $status == 1 ]] || { cat "$WORK/full.log"; fail "full disk: exit $status, expected 1"; }
  grep -q "No space left on device\|disk full" "$WORK/full.log" || { cat "$WORK/full.log"; fail "full disk: no clear message"; }
  no_half_output "$mnt/run"
  before=$(done_count "$mnt/run")
  mount -o remount,size=64m "$mnt"
  "$CLIPSHARD_BINARY" run "$WORK/full.json" 2> "$WORK/full2.log" || { cat "$WORK/full2.log"; fail "resume after the full disk failed"; }
  identical "$mnt/run"
  faults=$((faults + 1))
  echo "3. full disk after $before/$total shards: $(grep -o 'error: .*' "$WORK/full.log" | head -c 160)"
  umount "$mnt"
  trap 'rm -rf "$WORK"' EXIT
else
  echo "3. full disk: skipped (cannot mount a tmpfs here)"
fi

# 4. The run directory becomes read-only mid-run. Root ignores permissions, so run as nobody then.
cfg "$WORK/ro.json" "$WORK/ro"
mkdir -p "$WORK/ro"
as_user=()
if [[ $(id -u) == 0 ]]; then
  command -v setpriv >/dev/null || skip "setpriv not installed (needed to drop root for the read-only test)"
  chown -R nobody "$WORK/ro"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  for f in "$CLIPSHARD_BINARY" "$KIT/model/model.safetensors" "$WORK/data/manifest.jsonl" "$WORK/data/img/0.jpg"; do
    "${as_user[@]}" test -r "$f" || skip "nobody cannot read $f (a path above $WORK is closed to other users)"
  done
fi
"${as_user[@]}" "$CLIPSHARD_BINARY" run "$WORK/ro.json" 2> "$WORK/ro.log" &
pid=$!
wait_done "$WORK/ro" 2 $pid
kill -STOP $pid
chmod a-w "$WORK/ro/parts" "$WORK/ro"
kill -CONT $pid
set +e; wait $pid; status=$?; set -e
before=$(done_count "$WORK/ro")
if (( before < total )); then
  [[ $status == 1 ]] || { cat "$WORK/ro.log"; fail "read-only directory: exit $status, expected 1"; }
  grep -q "Permission denied" "$WORK/ro.log" || { cat "$WORK/ro.log"; fail "read-only directory: no clear message"; }
  no_half_output "$WORK/ro"
  faults=$((faults + 1))
  echo "4. read-only after $before/$total shards: $(grep -o 'error: .*' "$WORK/ro.log" | head -c 160)"
else
  echo "4. read-only: the run finished before the directory became read-only (not counted)"
fi
chmod u+w "$WORK/ro/parts" "$WORK/ro"
"${as_user[@]}" "$CLIPSHARD_BINARY" run "$WORK/ro.json" 2> "$WORK/ro2.log" || { cat "$WORK/ro2.log"; fail "resume after read-only failed"; }
identical "$WORK/ro"
echo "storage faults: $faults injected, all resumed to identical output, rows lost: 0 ($((SECONDS - t0)) s)"
