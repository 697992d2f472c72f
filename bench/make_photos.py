#!/usr/bin/python3
"""Photo-like JPEGs of given sizes for decode_bench (bench/README.md).

Each image: a two-colour gradient, low-frequency waves, 5-25 filled shapes and lines, a light
blur, then per-pixel noise (sensor-like texture, which is what makes real photos expensive to
entropy-decode), saved by Pillow at JPEG quality 85-95 with 4:2:0 chroma (Pillow's default).
Deterministic for a given seed.

Usage: make_photos.py OUT_DIR [--per-size N] [--sizes 300,600,...] [--seed S] [--noise A]
  The longer side of each image is one of --sizes, the shorter one 0.56-1.0 of it (16:9 to 1:1),
  landscape or portrait at random; also writes OUT_DIR/manifest.jsonl (image_path, text) so the
  same set can be scored end to end with `clipshard run`.
"""
import argparse
import json
import multiprocessing
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def draw_random_shapes(draw, rng, w, h, max_line_width):
    """5-25 filled ellipses, rectangles and lines of random colours on a w x h PIL ImageDraw,
    drawn from `rng` (random.Random) in a fixed order, so that a seed gives the same image.
    Shared with bench.py's image generator."""
    for _ in range(rng.randint(5, 25)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(10, max(11, w // 2)), y0 + rng.randint(10, max(11, h // 2))
        color = tuple(rng.randrange(256) for _ in range(3))
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        else:
            draw.line([x0, y0, x1, y1], fill=color, width=rng.randint(1, max_line_width))


def make_image(job):
    seed, w, h, noise, path = job
    rng = random.Random(seed)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = nrng.uniform(0, 255, 3), nrng.uniform(0, 255, 3)
    t = (xx * nrng.uniform(-1, 1) + yy * nrng.uniform(-1, 1)) / (w + h) + 0.5
    base = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # Wave periods scale with the image, so a 4000 px photo is not just a 400 px one's texture.
    fx, fy = nrng.uniform(6, 50, 2) / max(w, h)
    base += 20 * np.sin(xx * fx)[..., None] * np.cos(yy * fy)[..., None]
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw_random_shapes(draw, rng, w, h, max_line_width=max(2, w // 100))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    arr = np.asarray(img).astype(np.int16)
    arr = arr + nrng.integers(-noise, noise + 1, size=arr.shape, dtype=np.int16)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(
        path, "JPEG", quality=rng.randint(85, 95))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--per-size", type=int, default=6)
    ap.add_argument("--sizes", default="300,450,640,800,1024,1280,1600,2000,2400,3000,4000")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--noise", type=int, default=10,
                    help="per-pixel noise amplitude (10: ~1.7 bits/pixel at these qualities, "
                         "like camera photos; 2: smooth images, ~0.6)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    jobs, rows = [], []
    for long_side in [int(s) for s in a.sizes.split(",")]:
        for k in range(a.per_size):
            short = int(long_side * rng.uniform(0.56, 1.0))
            w, h = (long_side, short) if rng.random() < 0.6 else (short, long_side)
            name = "p%04d_%dx%d.jpg" % (len(jobs), w, h)
            jobs.append((rng.randrange(1 << 62), w, h, a.noise, os.path.join(a.out, name)))
            rows.append({"image_path": name, "text": "a photo number %d" % len(rows)})
    with multiprocessing.Pool(min(2, os.cpu_count())) as pool:
        pool.map(make_image, jobs)
    with open(os.path.join(a.out, "manifest.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print("%d images in %s" % (len(jobs), a.out))


if __name__ == "__main__":
    main()
