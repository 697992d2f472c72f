"""DataFlow-MM compatible operators backed by the clipshard binary.

Same constructor parameters and `run(storage, ...)` signatures as DataFlow-MM's
`ImageCLIPEvaluator`, `ImageLongCLIPEvaluator` and `ImageClipFilter`, so a pipeline swaps clipshard
in by changing an import. `storage` is anything with DataFlow's storage protocol:
`storage.read("dataframe")` returns the step's rows (a pandas DataFrame, or a list of dicts) and
`storage.write(data)` stores the step's result in the same form. dataflow itself is not imported.

Each run writes the rows to a temporary manifest, runs one clipshard job on it and maps the
results back by position; relative image paths resolve against the current directory, as they do
in DataFlow-MM. clipshard-only settings (binary, models_dir, batch_size, run_dir, ...) are
keyword-only constructor arguments with defaults, so DataFlow-MM's positional calls still fit.
"""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from .runner import PathLike, RunResult, run as run_clipshard

_INDEX_KEY = "__clipshard_row"  # added to each row in the manifest, removed from the results


def _plain(value: Any) -> Any:
    """A value json.dumps can write as valid JSON: numpy scalars/arrays to Python, NaN to null
    (pandas' missing value; JSON has no NaN), anything else unknown to its str()."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _plain(value.tolist())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _records(data: Any) -> List[Dict[str, Any]]:
    if hasattr(data, "to_dict"):  # pandas.DataFrame
        return data.to_dict(orient="records")
    return [dict(row) for row in data]


class _ClipshardOperator:
    _kind = ""

    def __init__(self, model_name: str, device: Optional[str] = None, *,
                 binary: Optional[PathLike] = None, models_dir: Optional[PathLike] = None,
                 batch_size: Optional[int] = None, run_dir: Optional[PathLike] = None,
                 config: Optional[Dict[str, Any]] = None):
        """model_name and device as in DataFlow-MM (device None = cuda if available, else cpu).
        binary: the clipshard executable (default $CLIPSHARD_BINARY, then PATH). models_dir:
        where model names are looked up. run_dir: keep each run's directory (summary.json,
        report.html, errors.jsonl) there instead of a temporary one; it is restarted on each
        run. config: more top-level config keys (docs/CONFIG.md)."""
        self.model_name = model_name
        self.device = device
        self.binary = binary
        self.models_dir = models_dir
        self.batch_size = batch_size
        self.run_dir = run_dir
        self.extra_config = dict(config or {})
        self.last_run: Optional[RunResult] = None  # the latest run (its directory may be gone)
        self.last_summary: Optional[Dict[str, Any]] = None
        self.last_errors: List[Dict[str, Any]] = []

    def _step(self, **params: Any) -> Dict[str, Any]:
        step = {"operator": self._kind, "model_name": self.model_name, **params}
        if self.device is not None:
            step["device"] = self.device
        return step

    def _score(self, rows: List[Dict[str, Any]], step: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Runs `step` on `rows`; returns the output rows (with _INDEX_KEY)."""
        with tempfile.TemporaryDirectory(prefix="clipshard-op-") as tmp:
            manifest = Path(tmp) / "rows.jsonl"
            with open(manifest, "w", encoding="utf-8") as f:
                for i, row in enumerate(rows):
                    row = _plain(row)
                    row[_INDEX_KEY] = i
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            run_dir = os.fspath(self.run_dir) if self.run_dir is not None else str(Path(tmp) / "run")
            config: Dict[str, Any] = {
                "input": [str(manifest)],
                "output_dir": run_dir,
                "image_root": os.getcwd(),
                "progress_interval_s": 0,
                "embedding_cache": {"enabled": False},
                "pipeline": [step],
            }
            if self.models_dir is not None:
                config["models_dir"] = os.fspath(self.models_dir)
            if self.batch_size is not None:
                config["batch_size"] = self.batch_size
            config.update(self.extra_config)
            result = run_clipshard(config, self.binary, restart=True)
            out = list(result.rows())
            self.last_run = result
            self.last_summary = result.summary()
            self.last_errors = list(result.errors())
        return out


class _Evaluator(_ClipshardOperator):
    _default_output_key = ""

    def run(self, storage: Any, input_image_key: str = "image_path", input_text_key: str = "text",
            output_key: Optional[str] = None) -> List[str]:
        """Adds `output_key` (score in [0, 1]; 0.0 for a bad row, whose reason is in
        self.last_errors) to every row and writes all rows back."""
        output_key = output_key or self._default_output_key
        data = storage.read("dataframe")
        rows = _records(data)
        out = self._score(rows, self._step(input_image_key=input_image_key,
                                           input_text_key=input_text_key, output_key=output_key))
        scores = [0.0] * len(rows)
        for row in out:
            scores[row[_INDEX_KEY]] = row.get(output_key, 0.0)
        if hasattr(data, "to_dict"):
            data[output_key] = scores
            storage.write(data)
        else:
            for row, score in zip(rows, scores):
                row[output_key] = score
            storage.write(rows)
        return [output_key]


class ImageCLIPEvaluator(_Evaluator):
    """CLIP score (cos + 1) / 2 per row (DataFlow-MM's ImageCLIPEvaluator)."""

    _kind = "ImageCLIPEvaluator"
    _default_output_key = "clip_score"

    def __init__(self, model_name: str = "openai/clip-vit-base-patch32",
                 device: Optional[str] = None, **clipshard_options: Any):
        super().__init__(model_name, device, **clipshard_options)

    def run(self, storage: Any, input_image_key: str = "image_path", input_text_key: str = "text",
            output_key: str = "clip_score") -> List[str]:
        return super().run(storage, input_image_key, input_text_key, output_key)


class ImageLongCLIPEvaluator(_Evaluator):
    """LongCLIP score (cos + 1) / 2 per row, 248-token text (DataFlow-MM's
    ImageLongCLIPEvaluator)."""

    _kind = "ImageLongCLIPEvaluator"
    _default_output_key = "longclip_score"

    def __init__(self, model_name: str = "BeichenZhang/LongCLIP-L-336px",
                 device: Optional[str] = None, **clipshard_options: Any):
        super().__init__(model_name, device, **clipshard_options)

    def run(self, storage: Any, input_image_key: str = "image_path", input_text_key: str = "text",
            output_key: str = "longclip_score") -> List[str]:
        return super().run(storage, input_image_key, input_text_key, output_key)


class ImageClipFilter(_ClipshardOperator):
    """Keeps the rows whose clip(cos, 0, 1) >= threshold (DataFlow-MM's ImageClipFilter); adds
    no column."""

    _kind = "ImageClipFilter"

    def __init__(self, model_name: str = "openai/clip-vit-base-patch32",
                 device: Optional[str] = None, **clipshard_options: Any):
        super().__init__(model_name, device, **clipshard_options)

    def run(self, storage: Any, input_image_key: str = "image", input_caption_key: str = "caption",
            threshold: float = 0.25) -> None:
        """Writes the kept rows, in their order, to storage (a DataFrame keeps its index)."""
        data = storage.read("dataframe")
        rows = _records(data)
        out = self._score(rows, self._step(input_image_key=input_image_key,
                                           input_caption_key=input_caption_key,
                                           threshold=threshold))
        kept = [row[_INDEX_KEY] for row in out]
        if hasattr(data, "iloc"):
            storage.write(data.iloc[kept])
        else:
            storage.write([rows[i] for i in kept])
