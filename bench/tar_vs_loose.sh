#!/bin/bash
# Images/s of clipshard reading WebDataset tars vs the same images as loose files + manifests
# (bench/README.md). Same corpus, same config, same batches; only the image source differs.
#   bench/tar_vs_loose.sh [--build-dir build] [--samples 800] [--per-tar 200] [--model DIR] [--repeat 3]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build samples=800 per_tar=200 repeat=3 model=$src/tests/fixtures/models/tiny/hf
while (($#)); do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --per-tar) per_tar=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/clipshard-tarbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
/usr/bin/python3 "$src/tests/common/make_webdataset.py" corpus data "$src/tests/fixtures/images" \
  "$samples" "$per_tar"
for kind in tar loose; do
  input='data/shards/*.tar'
  [[ $kind == loose ]] && input='data/manifests/*.jsonl'
  for ((r = 1; r <= repeat; r++)); do
    cat > $kind.json <<JSON
{"input": "$input", "output_dir": "run-$kind-$r", "device": "cpu", "progress_interval_s": 0,
 "embedding_cache": {"enabled": false},
 "pipeline": [{"operator": "ImageCLIPEvaluator", "model_name": "$model",
               "input_image_key": "jpg", "input_text_key": "txt"}]}
JSON
    start=$(date +%s.%N)
    "$build/driver/clipshard" run $kind.json 2> /dev/null
    end=$(date +%s.%N)
    /usr/bin/python3 -c "import sys; n=$samples; t=$end-$start; print('%-5s run %d: %d images in %.2f s = %.1f images/s' % ('$kind', $r, n, t, n/t))"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
