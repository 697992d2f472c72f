#!/usr/bin/env bash
# The command line's edges: --version (and `version`) print every library a bug report needs and
# exit 0; no subcommand is a usage error (2); `status` of a missing directory fails naming it and
# creates nothing, of an existing non-run directory says "empty" and leaves it untouched; a model
# that is not found is reported with the places looked at and how to get real weights.
set -euo pipefail
: "${CLIPSHARD_BINARY:?}" "${CLIPSHARD_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/clipshard-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for form in --version version; do
  out=$("$CLIPSHARD_BINARY" $form) || fail "clipshard $form exited $?"
  echo "$out"
  for line in '^clipshard [0-9]+\.[0-9]+\.[0-9]+$' '^LibTorch [0-9]+\.[0-9]+' '^CUDA: ' '^MPI: .+' '^BLAS: .+'; do
    grep -Eq "$line" <<<"$out" || fail "clipshard $form: no line matching $line"
  done
done

rc=0; "$CLIPSHARD_BINARY" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "clipshard without a subcommand exited $rc, expected 2"

rc=0; err=$("$CLIPSHARD_BINARY" status "$tmp/typo" 2>&1 >/dev/null) || rc=$?
[[ $rc != 0 ]] || fail "status of a missing directory exited 0"
grep -qF "$tmp/typo" <<<"$err" || fail "status error does not name the directory: $err"
[[ ! -e $tmp/typo ]] || fail "status created $tmp/typo"

mkdir "$tmp/plain"
out=$("$CLIPSHARD_BINARY" status "$tmp/plain") || fail "status of an existing directory exited $?"
grep -q '"state":"empty"' <<<"$out" || fail "status of a directory without a run: $out"
[[ -z $(ls -A "$tmp/plain") ]] || fail "status wrote into $tmp/plain: $(ls -A "$tmp/plain")"
# A model that is not found: the message lists where it looked and how to get real weights; the
# run directory is not created.
rc=0
err=$(HOME=$tmp/home HF_HUB_CACHE= HF_HOME= XDG_CACHE_HOME= "$CLIPSHARD_BINARY" run \
        --op ImageCLIPEvaluator --model openai/clip-vit-base-patch32 \
        --input "$CLIPSHARD_SOURCE_DIR/examples/manifest.jsonl" --output-dir "$tmp/run" 2>&1) || rc=$?
[[ $rc == 1 ]] || fail "run with a missing model exited $rc, expected 1: $err"
for want in "model 'openai/clip-vit-base-patch32' not found" "$tmp/home/.cache/huggingface/hub" \
            "huggingface-cli download openai/clip-vit-base-patch32 --local-dir clip-vit-base-patch32"; do
  grep -qF "$want" <<<"$err" || fail "missing-model message lacks \"$want\": $err"
done
[[ ! -e $tmp/run ]] || fail "a run with a missing model created its run directory"
echo PASS
