#!/usr/bin/python3
"""Each precision against fp32 on the bench set: max |score difference| and keep/drop flips.

    bench/precision_compare.py [--build-dir build] [--work DIR] [--images N] [--device cpu]
                               [--precisions bf16[,fp16]]

Makes bench.py's data set (N JPEGs + captions), runs clipshard once per precision with the
evaluators (ImageCLIPEvaluator on the tiny Hugging Face fixture, ImageLongCLIPEvaluator on the
tiny LongCLIP fixture) and once per precision with ImageClipFilter (tiny fixture) at the median
fp32 similarity, then prints per operator: max and mean |score - fp32 score|, and how many rows
land on the other side of the cut (the evaluators: the median fp32 score; the filter: its
threshold). The fixture models have random weights: their score distributions are narrow and do
not look like a real model's, so the flip counts say how close rows sit to the cut more than how
a real model behaves. fp16 needs a CUDA device (--device cuda).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402  (make_dataset)

TINY = os.path.join(REPO, "tests", "fixtures", "models", "tiny", "hf")
LONGCLIP = os.path.join(REPO, "tests", "fixtures", "models", "longclip-tiny", "model.pt")


def run(clipshard, manifest, out, device, precision, pipeline):
    config = {"input": [manifest], "output_dir": out, "device": device, "precision": precision,
              "progress_interval_s": 0, "embedding_cache": {"enabled": False},
              "pipeline": pipeline}
    path = out + ".json"
    json.dump(config, open(path, "w"), indent=1)
    start = time.perf_counter()
    proc = subprocess.run([clipshard, "run", path, "--restart"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("clipshard failed (%d):\n%s" % (proc.returncode, proc.stderr[-3000:]))
    rows = [json.loads(line) for line in open(os.path.join(out, "output.jsonl"))]
    summary = json.load(open(os.path.join(out, "summary.json")))
    return rows, summary, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="bf16")
    a = ap.parse_args()
    clipshard = os.path.join(a.build_dir, "driver", "clipshard")
    work = a.work or tempfile.mkdtemp(prefix="clipshard-precision-")
    manifest = bench.make_dataset(os.path.join(work, "data"), a.images, a.seed)
    evaluators = [{"operator": "ImageCLIPEvaluator", "model_name": TINY},
                  {"operator": "ImageLongCLIPEvaluator", "model_name": LONGCLIP}]
    precisions = ["fp32"] + [p for p in a.precisions.split(",") if p and p != "fp32"]
    scored, walls = {}, {}
    for p in precisions:
        rows, summary, wall = run(clipshard, manifest, os.path.join(work, "eval-" + p), a.device,
                                  p, evaluators)
        scored[p] = rows
        walls[p] = wall
        print("evaluators %s: %.1f s, models %s" % (p, wall, [(m["operator"], m["device"],
              m["precision"]) for m in summary["models"]]), file=sys.stderr)
    # The filter's similarity is clip(cos, 0, 1) with cos = 2 * clip_score - 1 of the same model:
    # its cut is the median fp32 similarity.
    sims = [min(1.0, max(0.0, 2 * r["clip_score"] - 1)) for r in scored["fp32"]]
    cut = statistics.median(sims)
    kept = {}
    for p in precisions:
        rows, _, _ = run(clipshard, manifest, os.path.join(work, "filter-" + p), a.device, p,
                         [{"operator": "ImageClipFilter", "model_name": TINY,
                           "input_image_key": "image_path", "input_caption_key": "text",
                           "threshold": cut}])
        kept[p] = {r["id"] for r in rows}
    results = []
    for p in precisions[1:]:
        for key, op in (("clip_score", "ImageCLIPEvaluator"),
                        ("longclip_score", "ImageLongCLIPEvaluator")):
            ref = [r[key] for r in scored["fp32"]]
            got = [r[key] for r in scored[p]]
            diffs = [abs(x - y) for x, y in zip(ref, got)]
            median = statistics.median(ref)
            flips = sum((x >= median) != (y >= median) for x, y in zip(ref, got))
            results.append({"operator": op, "precision": p, "rows": len(ref),
                            "max_abs_diff": max(diffs), "mean_abs_diff": statistics.mean(diffs),
                            "cut": median, "flips": flips})
        ref_sims = sims
        got_sims = [min(1.0, max(0.0, 2 * r["clip_score"] - 1)) for r in scored[p]]
        diffs = [abs(x - y) for x, y in zip(ref_sims, got_sims)]
        results.append({"operator": "ImageClipFilter", "precision": p, "rows": len(ref_sims),
                        "max_abs_diff": max(diffs), "mean_abs_diff": statistics.mean(diffs),
                        "cut": cut, "flips": len(kept["fp32"] ^ kept[p]),
                        "kept_fp32": len(kept["fp32"]), "kept": len(kept[p])})
    print(json.dumps({"work": work, "device": a.device, "images": a.images,
                      "evaluator_wall_seconds": walls, "results": results}, indent=1))
    print("| operator | model | precision | rows | max \\|Δscore\\| | mean \\|Δscore\\| | cut | flips |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        model = "longclip-tiny" if "Long" in r["operator"] else "tiny (hf)"
        print("| %s | %s | %s | %d | %.2e | %.2e | %.4f | %d |" % (
            r["operator"], model, r["precision"], r["rows"], r["max_abs_diff"],
            r["mean_abs_diff"], r["cut"], r["flips"]))


if __name__ == "__main__":
    main()
