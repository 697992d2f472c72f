#!/usr/bin/env python3
"""The GPU benchmark of scripts/gpu-check.sh (docs/GPU.md): random-weight models, the towers alone
(bench/model_bench) per preset, precision and batch size, then clipshard end to end on generated
JPEGs with reduced decode. Samples GPU utilisation with nvidia-smi during every measurement and
writes DIR/gpu-bench.md (one table) and DIR/gpu-bench.json. Stops starting measurements once the
deadline (--deadline, seconds since the epoch) is near; what was left out is listed as skipped.

  gpu_bench.py --build-dir BUILD --out DIR --work SCRATCH [--device cuda] [--deadline T] [--quick]

--quick (the CPU dry run): tiny presets, CPU, fp32 and bf16 (LibTorch has no fp16 CPU kernels),
small batches and a few images; it checks the script end to end, its numbers mean nothing.

The JSON lists what was planned ("planned": presets and precisions of the towers), so that
scripts/gpu-check.sh can check that every planned row is in the table or listed as skipped.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"gpu_bench: {msg}", flush=True)


class GpuSampler:
    """nvidia-smi in the background for the length of a `with` block; every sample is stamped with
    the time it arrived, so that summary(t0, t1) covers one measurement of several."""

    def __init__(self, path):
        self.path = path
        self.proc = None
        self.samples = []  # (time, utilisation %, memory MiB)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        with open(self.path, "w") as f:
            for line in self.proc.stdout:
                now = time.time()
                f.write(f"{now:.3f},{line}")
                try:
                    util, mem = (float(x) for x in line.split(",")[:2])
                    self.samples.append((now, util, mem))
                except ValueError:
                    pass

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.thread.join(timeout=5)

    def summary(self, t0=0.0, t1=float("inf")):
        picked = [(u, m) for t, u, m in self.samples if t0 <= t <= t1]
        if not picked:
            return {}
        util = [u for u, _ in picked]
        return {"gpu_util_mean": round(sum(util) / len(util), 1), "gpu_util_max": max(util),
                "gpu_mem_max_mib": max(m for _, m in picked), "gpu_samples": len(picked)}


def run(cmd, logf, timeout):
    """Runs cmd (output appended to logf); returns stdout or raises with the log named."""
    with open(logf, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout)
        f.write(p.stdout)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} exited with {p.returncode} (see {logf})")
    return p.stdout


def json_objects(text):
    """Every JSON object in text (model_bench prints one per batch size, pretty or not)."""
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return objects
        obj, pos = decoder.raw_decode(text, start)
        objects.append(obj)


def make_images(root, n_distinct, size):
    """n_distinct JPEGs (PIL when present, else copies of the fixture photos)."""
    os.makedirs(root, exist_ok=True)
    paths = []
    try:
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(1)
        w, h = size
        y, x = np.mgrid[0:h, 0:w]
        for i in range(n_distinct):
            c = rng.uniform(0, 255, 3)
            base = np.stack([(x * (i + 1) * 0.3 + c[k] + y * 0.2 * k) % 256 for k in range(3)], -1)
            base += rng.normal(0, 12, base.shape)
            p = os.path.join(root, f"img{i:03d}.jpg")
            Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB").save(p, quality=90)
            paths.append(p)
        return paths, f"generated with PIL, {w}x{h}"
    except ImportError:
        fixtures = os.path.join(REPO, "tests", "fixtures", "images")
        for name in ("photo_640x480.jpg", "large_3000x2000.jpg", "portrait_333x500.jpg",
                     "panorama_1024x200.jpg", "progressive_500x375.jpg", "q444_300x220.jpg"):
            p = os.path.join(root, name)
            shutil.copy(os.path.join(fixtures, name), p)
            paths.append(p)
        return paths, "fixture JPEGs (no PIL on this host)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True, help="scratch directory for models and images")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline", type=float, default=time.time() + 300)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    logf = os.path.join(a.out, "bench.log")
    clipshard = os.path.join(a.build_dir, "driver", "clipshard")
    model_bench = os.path.join(a.build_dir, "bench", "model_bench")

    if a.quick:
        presets = [("tiny", "clip", "hf"), ("longclip-tiny", "longclip", "longclip")]
        precisions, batches, rows, distinct, reps = ["fp32", "bf16"], [4, 8], 48, 4, 1
    else:
        presets = [("vit-b-32", "clip", "hf"), ("longclip-l-336", "longclip", "longclip")]
        # Every precision clipshard runs at; the half precisions first, so that a deadline cuts
        # fp32, whose numbers the CPU runs already give an idea of.
        precisions, batches, rows, distinct, reps = ["fp16", "bf16", "fp32"], [64, 128, 256, 512], 4096, 64, 2
    results, skipped = [], []

    def time_left():
        return a.deadline - time.time()

    models = {}
    for preset, family, fmt in presets:
        path = os.path.join(a.work, preset if fmt == "hf" else preset + ".pt")
        if not os.path.exists(path):
            t = time.time()
            run([clipshard, "make-model", "--preset", preset, "--format", fmt, "--out", path],
                logf, max(10, time_left()))
            log(f"model {preset} written in {time.time() - t:.1f} s")
        models[preset] = (path, family)

    # The towers alone: one model_bench process (one model load) per preset and precision, every
    # batch size in it, smallest first so that a deadline cuts the largest.
    for preset, family, _ in presets:
        path = models[preset][0]
        for precision in precisions:
            name = f"{preset} {precision}"
            if time_left() < 30:
                skipped.append(f"{name} (batches {batches}): time budget")
                continue
            smi = os.path.join(a.out, f"smi-{preset}-{precision}.csv")
            try:
                with GpuSampler(smi) as s:
                    out = run([model_bench, "--model", path, "--family", family, "--device",
                               a.device, "--precision", precision,
                               "--batch", ",".join(str(b) for b in batches),
                               "--text-len", "77" if family == "clip" else "248",
                               "--reps", str(reps)], logf, max(5, time_left() - 15))
                rows_out = json_objects(out)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                skipped.append(f"{name}: {e}")
                log(f"{name}: {e}")
                continue
            for r in rows_out:
                r.update({"kind": "towers", "preset": preset, **s.summary(r["t_start"], r["t_end"])})
                results.append(r)
                log(f"{name} batch {r['batch']}: {r['images_per_s']:.0f} images/s, "
                    f"{r['texts_per_s']:.0f} texts/s")

    # End to end: decode (reduced) + preprocess + both towers + output, on JPEGs.
    paths, image_note = make_images(os.path.join(a.work, "images"), distinct,
                                    (1024, 768) if not a.quick else (320, 240))
    rnd = random.Random(1)
    words = "a photo of the cat dog car red blue street house tree on with near".split()
    manifest = os.path.join(a.work, "manifest.jsonl")
    with open(manifest, "w") as f:
        for i in range(rows):
            text = " ".join(rnd.choice(words) for _ in range(rnd.randint(4, 14)))
            f.write(json.dumps({"image_path": paths[i % len(paths)], "text": text}) + "\n")
    for preset, family, _ in presets:
        name = f"{preset} end to end"
        if time_left() < 40:
            skipped.append(name + ": time budget")
            continue
        run_dir = os.path.join(a.work, "run-" + preset)
        shutil.rmtree(run_dir, ignore_errors=True)
        op = "ImageCLIPEvaluator" if family == "clip" else "ImageLongCLIPEvaluator"
        batch = 256 if not a.quick else 8
        smi = os.path.join(a.out, f"smi-{preset}-e2e.csv")
        t = time.time()
        try:
            with GpuSampler(smi) as s:
                run([clipshard, "run", "--op", op, "--model", models[preset][0], "--input",
                     manifest, "--output-dir", run_dir, "--batch-size", str(batch), "--device",
                     a.device, "--set", "reduced_decode=true", "--set", "progress_interval_s=0"],
                    logf, max(10, time_left() - 10))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skipped.append(f"{name}: {e}")
            log(f"{name}: {e}")
            continue
        wall = time.time() - t
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        r = {"kind": "end_to_end", "preset": preset, "precision": "auto", "device": a.device,
             "batch": batch, "rows": rows, "wall_seconds": wall, "pairs_per_s": rows / wall,
             "images": image_note, "summary": summary, **s.summary()}
        results.append(r)
        log(f"{name}: {rows / wall:.0f} pairs/s over {wall:.1f} s (process start and model load included)")

    report = {"device": a.device, "quick": a.quick,
              "planned": {"presets": [p for p, _, _ in presets], "precisions": precisions,
                          "batches": batches},
              "results": results, "skipped": skipped}
    with open(os.path.join(a.out, "gpu-bench.json"), "w") as f:
        json.dump(report, f, indent=2)
    lines = ["| what | preset | precision | batch | images/s | texts/s | pairs/s | GPU util mean/max % | GPU mem max MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        util = f"{r.get('gpu_util_mean', '-')}/{r.get('gpu_util_max', '-')}"
        lines.append("| {} | {} | {} | {} | {} | {} | {:.1f} | {} | {} |".format(
            r["kind"], r["preset"], r["precision"], r["batch"],
            f"{r['images_per_s']:.1f}" if "images_per_s" in r else "-",
            f"{r['texts_per_s']:.1f}" if "texts_per_s" in r else "-",
            r["pairs_per_s"], util, r.get("gpu_mem_max_mib", "-")))
    lines += [f"- skipped: {s}" for s in skipped]
    with open(os.path.join(a.out, "gpu-bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
