"""clipshard from Python: run a config through the clipshard binary, stream its output and
error rows, load summary.json and exported embeddings, and DataFlow-MM compatible operators.

    import clipshard
    result = clipshard.run({"input": ["data.jsonl"], "output_dir": "runs/x", "pipeline": [...]})
    for row in result.rows(): ...
"""

from .embeddings import Embeddings, load_embeddings
from .operators import ImageCLIPEvaluator, ImageClipFilter, ImageLongCLIPEvaluator
from .runner import (EXIT_INTERRUPTED, ClipshardError, RunResult, find_binary, iter_errors,
                     iter_jsonl, iter_rows, load_summary, run)

__all__ = [
    "ClipshardError", "EXIT_INTERRUPTED", "Embeddings", "ImageCLIPEvaluator", "ImageClipFilter",
    "ImageLongCLIPEvaluator", "RunResult", "find_binary", "iter_errors", "iter_jsonl", "iter_rows",
    "load_embeddings", "load_summary", "run",
]
__version__ = "0.1.0"
