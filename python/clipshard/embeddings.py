"""Embeddings in the clip-retrieval layout: img_emb/img_emb_N.npy, text_emb/text_emb_N.npy and
metadata/metadata_N.jsonl, parts concatenated in N order (numeric, so 10 comes after 9)."""

import json
import re
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np

from .runner import PathLike


class Embeddings(NamedTuple):
    image: Optional[np.ndarray]  # [rows, dim] or None when there is no img_emb/
    text: Optional[np.ndarray]  # [rows, dim] or None when there is no text_emb/
    metadata: List[Dict[str, Any]]  # one dict per row (empty when there is no metadata/)


def _parts(folder: Path, prefix: str, suffix: str) -> List[Path]:
    """The files PREFIX_N.SUFFIX of `folder`, by N. Raises ValueError on a gap in N (a part
    missing would silently shift every later row against the other folders)."""
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"_(\d+)" + re.escape(suffix) + r"$")
    numbered = []
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m:
            numbered.append((int(m.group(1)), p))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ValueError(f"{folder}: {prefix}_N{suffix} parts are not consecutive: {numbers}")
    return [p for _, p in numbered]


def _load_arrays(paths: List[Path]) -> Optional[np.ndarray]:
    if not paths:
        return None
    arrays = []
    for p in paths:
        a = np.load(p, allow_pickle=False)
        if a.ndim != 2:
            raise ValueError(f"{p}: expected a 2-D array, got shape {a.shape}")
        if arrays and a.shape[1] != arrays[0].shape[1]:
            raise ValueError(f"{p}: dimension {a.shape[1]} differs from {paths[0]} "
                             f"({arrays[0].shape[1]})")
        arrays.append(a)
    return np.concatenate(arrays, axis=0)


def load_embeddings(directory: PathLike, mmap: bool = False) -> Embeddings:
    """Loads the image and text embeddings and the metadata under `directory`. With mmap=True
    and a single part per folder, the arrays are memory-mapped instead of read. Raises
    ValueError when the folders disagree on the number of rows, a part is missing in the
    sequence, or an array is not 2-D; FileNotFoundError when `directory` does not exist."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no embeddings directory {root}")
    img_parts = _parts(root / "img_emb", "img_emb", ".npy")
    text_parts = _parts(root / "text_emb", "text_emb", ".npy")
    meta_parts = _parts(root / "metadata", "metadata", ".jsonl")
    if mmap and len(img_parts) <= 1 and len(text_parts) <= 1:
        image = np.load(img_parts[0], mmap_mode="r") if img_parts else None
        text = np.load(text_parts[0], mmap_mode="r") if text_parts else None
    else:
        image = _load_arrays(img_parts)
        text = _load_arrays(text_parts)
    metadata: List[Dict[str, Any]] = []
    for p in meta_parts:
        with open(p, "r", encoding="utf-8") as f:
            metadata.extend(json.loads(line) for line in f if line.strip())
    counts = {name: len(a) for name, a in (("img_emb", image), ("text_emb", text)) if a is not None}
    if meta_parts:
        counts["metadata"] = len(metadata)
    if len(set(counts.values())) > 1:
        raise ValueError(f"{root}: row counts differ between folders: {counts}")
    return Embeddings(image, text, metadata)
