#!/usr/bin/env bash
# report.html of a real small run (tiny model), opened in headless chromium: the DOM has the SVG
# histogram bars the summary promises, and the screenshot shows them (bar-coloured pixels where
# the first histogram is). Skips (77) without chromium. CLIPSHARD_REPORT_PNG=FILE keeps the
# screenshot for a look.
source "$(dirname "$0")/../mpi/lib.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[[ -n $CHROMIUM ]] || skip "no chromium installed (apt-get install chromium)"
PY=/usr/bin/python3
$PY -c 'import PIL' 2>/dev/null || skip "no python3-pil"

make_dataset "$WORK/data" 60 "$CLIPSHARD_FIXTURES/images/photo_640x480.jpg"
write_config "$WORK/config.json" "$WORK/data/manifest.jsonl" "$WORK/run"
"$CLIPSHARD_BINARY" run "$WORK/config.json" > "$WORK/log" 2>&1 || { cat "$WORK/log"; fail "run failed"; }
grep -q "ImageClipFilter kept [0-9]* of [0-9]* rows, dropped" "$WORK/log" || { cat "$WORK/log"; fail "no per-operator line"; }
REPORT=$WORK/run/report.html
[[ -s $REPORT ]] || fail "no $REPORT"

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$WORK/profile" --window-size=1200,1600)
timeout 120 "$CHROMIUM" "${flags[@]}" --dump-dom "file://$REPORT" > "$WORK/dom.html" 2> "$WORK/chromium.log" \
  || { tail "$WORK/chromium.log"; fail "chromium --dump-dom failed"; }
timeout 120 "$CHROMIUM" "${flags[@]}" --screenshot="$WORK/out.png" "file://$REPORT" 2>> "$WORK/chromium.log" \
  || { tail "$WORK/chromium.log"; fail "chromium --screenshot failed"; }
[[ -s $WORK/out.png ]] || fail "no screenshot"
[[ -n ${CLIPSHARD_REPORT_PNG:-} ]] && cp "$WORK/out.png" "$CLIPSHARD_REPORT_PNG"

$PY - "$WORK/run/summary.json" "$WORK/dom.html" "$WORK/out.png" <<'PYEOF' || fail "report check failed"
import json, re, sys
from PIL import Image
summary, dom, png = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
ops = summary["operators"]
bins = sum(len(o["scores"]["histogram"]["counts"]) for o in ops)
bars = len(re.findall(r'<rect class="bar', dom))
print(f"histogram bins in summary: {bins}, SVG bars in the DOM: {bars}")
assert bins > 0 and bars == bins, "the rendered DOM lacks the histogram bars"
assert dom.count('class="histogram"') + dom.count("class=histogram") >= len(ops)
assert "cut " in dom, "no threshold line"
img = Image.open(png).convert("RGB")
assert img.size == (1200, 1600), img.size
w, h = img.size
px = img.load()
nonwhite = sum(1 for y in range(0, h, 2) for x in range(0, w, 2) if px[x, y] != (255, 255, 255))
# Kept bars are #4a7bd0; antialiasing blurs edges, so allow a small distance.
blue = [(x, y) for y in range(h) for x in range(w)
        if abs(px[x, y][0] - 0x4a) < 12 and abs(px[x, y][1] - 0x7b) < 12 and abs(px[x, y][2] - 0xd0) < 12]
print(f"non-white sampled pixels: {nonwhite}, bar-coloured pixels: {len(blue)}")
assert nonwhite > 2000, "the screenshot is (nearly) blank"
assert len(blue) > 500, "no histogram bars visible in the screenshot"
assert min(y for _, y in blue) < h * 0.75, "bars only at the very bottom"
PYEOF
echo "PASS: report.html rendered with its histograms"
