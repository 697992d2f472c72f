#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then the installed clipshard with the source and build
# trees hidden (empty directories bind-mounted over them in a private mount namespace): --version,
# make-model, and one job whose pipeline uses an OpenAI-layout .pt, a LongCLIP checkpoint and a
# Hugging Face directory (the first two tokenize with the BPE vocabulary built into the binary),
# run from another working directory. Also: the installed binary's RUNPATH and `ldd` name no path
# of the build or source tree. Needs root or unprivileged user namespaces for `unshare --mount`;
# exits 77 (skipped) with the reason otherwise.
set -euo pipefail
: "${CLIPSHARD_BINARY:?}" "${CLIPSHARD_SOURCE_DIR:?}" "${CLIPSHARD_FIXTURES:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }

src=$(cd "$CLIPSHARD_SOURCE_DIR" && pwd -P)
# The build tree: the nearest directory above the binary that holds CMakeCache.txt.
build=$(cd "$(dirname "$CLIPSHARD_BINARY")" && pwd -P)
while [[ ! -f $build/CMakeCache.txt ]]; do
  [[ $build == / ]] && fail "no CMakeCache.txt above $CLIPSHARD_BINARY"
  build=$(dirname "$build")
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/clipshard-install.XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
case $tmp/ in "$src"/* | "$build"/*) fail "temporary directory $tmp lies inside the trees it hides" ;; esac
prefix=$tmp/prefix

# Can this process make a private mount namespace? As root directly, else as a mapped user.
unshare_cmd=()
if unshare --mount --propagation private true 2>/dev/null; then
  unshare_cmd=(unshare --mount --propagation private)
elif unshare --user --map-root-user --mount --propagation private true 2>/dev/null; then
  unshare_cmd=(unshare --user --map-root-user --mount --propagation private)
else
  echo "SKIP: cannot create a mount namespace here (unshare --mount needs root or user namespaces)"
  exit 77
fi

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install failed"; }
bin=$prefix/bin/clipshard
for f in bin/clipshard share/clipshard/slurm/clipshard.sbatch share/clipshard/slurm/submit.sh \
         share/doc/clipshard/README.md share/doc/clipshard/CONFIG.md; do
  [[ -e $prefix/$f ]] || fail "installed tree lacks $f"
done
[[ -x $prefix/share/clipshard/slurm/clipshard.sbatch ]] || fail "clipshard.sbatch is not executable"

echo "== RUNPATH and ldd of the installed binary"
runpath=$(readelf -d "$bin" | grep -E 'R(UN)?PATH' || true)
echo "${runpath:-no RUNPATH}"
for tree in "$src" "$build"; do
  [[ $runpath != *"$tree"* ]] || fail "RUNPATH of $bin names $tree"
done
ldd "$bin" >"$tmp/ldd.txt"
if grep -q "not found" "$tmp/ldd.txt"; then cat "$tmp/ldd.txt"; fail "ldd: unresolved libraries"; fi
for tree in "$src" "$build"; do
  if grep -qF "$tree" "$tmp/ldd.txt"; then cat "$tmp/ldd.txt"; fail "ldd resolves a library in $tree"; fi
done

echo "== inputs outside the trees"
mkdir -p "$tmp/models" "$tmp/data" "$tmp/elsewhere" "$tmp/empty-src" "$tmp/empty-build"
cp -r "$CLIPSHARD_FIXTURES/models/tiny/hf" "$tmp/models/hf"
cp "$CLIPSHARD_FIXTURES/models/longclip-tiny/model.pt" "$tmp/models/longclip-tiny.pt"
cp -r "$src/examples/images" "$src/examples/manifest.jsonl" "$tmp/data/"
cat >"$tmp/data/job.json" <<JSON
{
  "input": ["$tmp/data/manifest.jsonl"],
  "output_dir": "run",
  "lines_per_shard": 4,
  "pipeline": [
    {"operator": "ImageCLIPEvaluator", "model_name": "$tmp/models/openai-tiny.pt",
     "output_key": "openai_score"},
    {"operator": "ImageLongCLIPEvaluator", "model_name": "$tmp/models/longclip-tiny.pt"},
    {"operator": "ImageCLIPEvaluator", "model_name": "$tmp/models/hf", "output_key": "hf_score"}
  ]
}
JSON

# Everything below runs with the source and build trees replaced by empty directories. The build
# tree is hidden first: it usually lies inside the source tree, which is hidden next.
cat >"$tmp/hidden.sh" <<'SH'
set -euo pipefail
mount --bind "$TMP/empty-build" "$BUILD"
mount --bind "$TMP/empty-src" "$SRC"
[[ ! -e $SRC/CMakeLists.txt && ! -e $SRC/models/data/bpe_simple_vocab_16e6.txt.gz ]] || { echo "FAIL: source tree still visible"; exit 1; }
[[ ! -e $BUILD/CMakeCache.txt ]] || { echo "FAIL: build tree still visible"; exit 1; }
cd "$TMP/elsewhere"
unset CLIPSHARD_BPE_PATH
"$BIN" --version
"$BIN" make-model --preset tiny --format openai --out "$TMP/models/openai-tiny.pt" --seed 7
"$BIN" run "$TMP/data/job.json"
"$BIN" status run
SH
echo "== installed clipshard with $src and $build hidden"
TMP=$tmp SRC=$src BUILD=$build BIN=$bin "${unshare_cmd[@]}" bash "$tmp/hidden.sh" >"$tmp/hidden.log" 2>&1 || {
  cat "$tmp/hidden.log"; fail "the installed clipshard failed without the source and build trees"; }
cat "$tmp/hidden.log"

run=$tmp/elsewhere/run
[[ -f $run/summary.json ]] || fail "no summary.json in $run (relative output_dir from the working directory)"
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(f"{run}/output.jsonl")]
summary = json.load(open(f"{run}/summary.json"))
assert summary["rows_out"] == len(rows), (summary["rows_out"], len(rows))
scored = [r for r in rows if all(k in r for k in ("openai_score", "longclip_score", "hf_score"))]
assert len(scored) >= 5, f"only {len(scored)} rows carry all three scores: {rows[:2]}"
for r in scored:
    for k in ("openai_score", "longclip_score", "hf_score"):
        assert 0.0 <= r[k] <= 1.0, (k, r)
print(f"ok: {len(scored)} rows scored by the OpenAI, LongCLIP and HF models")
PY
grep -q '"state":"finished"' "$tmp/hidden.log" || fail "status of the run is not finished"
echo "PASS"
