"""Shared fixtures: the clipshard binary (skip when it is not built) and a small dataset on the
tiny random-weight model of tests/fixtures."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

try:
    import clipshard  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a source checkout: test the package next to this folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("CLIPSHARD_FIXTURES", REPO / "tests" / "fixtures"))
TINY_MODEL = FIXTURES / "models" / "tiny" / "hf"


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("CLIPSHARD_BINARY") or str(REPO / "build" / "driver" / "clipshard")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"clipshard binary not built ({path}); build it or set CLIPSHARD_BINARY")
    if not TINY_MODEL.is_dir():
        pytest.skip(f"tiny model fixture missing: {TINY_MODEL}")
    return path


@pytest.fixture
def dataset(tmp_path):
    """tmp_path/data: 8 rows with relative image paths (img/N.*), one missing image (row 3)
    and one blank caption (row 5). Returns (data_dir, rows)."""
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    images = [FIXTURES / "images" / n for n in
              ("photo_640x480.jpg", "square_224x224.jpg", "portrait_333x500.jpg", "gray_400x300.jpg")]
    rows = []
    for i in range(8):
        src = images[i % len(images)]
        name = f"img/{i}{src.suffix}"
        shutil.copy(src, data / name)
        rows.append({"id": i, "image": name, "caption": f"a photo number {i} of a scene"})
    rows[3]["image"] = "img/missing.jpg"
    rows[5]["caption"] = "   "
    with open(data / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return data, rows
