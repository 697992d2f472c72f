"""The clipshard Python package against the real binary (tiny random-weight model)."""

import inspect
import json

import numpy as np
import pytest

import clipshard
from conftest import TINY_MODEL


def pipeline_config(data, out, threshold=0.1):
    return {
        "input": [str(data / "manifest.jsonl")],
        "output_dir": str(out),
        "device": "cpu",
        "batch_size": 4,
        "lines_per_shard": 3,
        "progress_interval_s": 0,
        "pipeline": [
            {"operator": "ImageCLIPEvaluator", "model_name": str(TINY_MODEL),
             "input_image_key": "image", "input_text_key": "caption"},
            {"operator": "ImageClipFilter", "model_name": str(TINY_MODEL),
             "threshold": threshold},
        ],
    }


def test_find_binary_names_what_it_tried(tmp_path, monkeypatch):
    with pytest.raises(clipshard.ClipshardError, match="nope"):
        clipshard.find_binary(tmp_path / "nope")
    monkeypatch.setenv("CLIPSHARD_BINARY", str(tmp_path / "also-missing"))
    with pytest.raises(clipshard.ClipshardError, match="also-missing"):
        clipshard.find_binary()


def test_run_streams_rows_errors_and_summary(binary, dataset, tmp_path):
    data, rows = dataset
    result = clipshard.run(pipeline_config(data, tmp_path / "run"), binary)
    out = list(result.rows())
    errors = list(result.errors())
    summary = result.summary()
    # The two bad rows have error records and are dropped by the filter (sim 0 < 0.1).
    assert sorted(e["line"] for e in errors) == [4, 6]
    assert {e["reason"] for e in errors} == {"file_not_found", "empty_caption"}
    assert all(isinstance(r, dict) and 0.0 < r["clip_score"] <= 1.0 for r in out)
    assert [r["id"] for r in out] == sorted(r["id"] for r in out)  # input order
    assert summary["rows_out"] == len(out)
    evaluator, filt = summary["operators"]
    assert evaluator["scores"]["bad_rows"] == 2 and evaluator["scores"]["count"] == 6
    assert filt["kept"] + filt["dropped"] == filt["rows_in"] == 8
    assert filt["kept"] == len(out)
    q = evaluator["scores"]["quantiles"]
    assert evaluator["scores"]["min"] <= q["p1"] <= q["p50"] <= q["p99"] <= evaluator["scores"]["max"]
    assert "ImageClipFilter kept" in result.stderr
    assert result.report_path.is_file()
    # The same rows through a config file and a --set override of the output directory.
    path = tmp_path / "config.json"
    path.write_text(json.dumps(pipeline_config(data, tmp_path / "unused")))
    again = clipshard.run(path, binary, sets=[f"output_dir={tmp_path / 'run2'}"])
    assert list(again.rows()) == out


def test_failed_run_raises_with_stderr(binary, tmp_path):
    config = {"input": [str(tmp_path / "none*.jsonl")], "output_dir": str(tmp_path / "run"),
              "pipeline": [{"operator": "ImageClipFilter", "model_name": str(TINY_MODEL)}]}
    with pytest.raises(clipshard.ClipshardError) as e:
        clipshard.run(config, binary)
    assert e.value.returncode not in (0, None)
    assert e.value.stderr


def write_parts(root, sizes, dim=4, text=True, meta=True):
    (root / "img_emb").mkdir(parents=True)
    (root / "text_emb").mkdir()
    (root / "metadata").mkdir()
    rng = np.random.default_rng(0)
    img, txt, md, row = [], [], [], 0
    for n, size in enumerate(sizes):
        a = rng.standard_normal((size, dim)).astype(np.float16)
        b = rng.standard_normal((size, dim)).astype(np.float16)
        np.save(root / "img_emb" / f"img_emb_{n}.npy", a)
        if text:
            np.save(root / "text_emb" / f"text_emb_{n}.npy", b)
        if meta:
            with open(root / "metadata" / f"metadata_{n}.jsonl", "w") as f:
                for _ in range(size):
                    f.write(json.dumps({"id": row}) + "\n")
                    row += 1
        img.append(a)
        txt.append(b)
    return np.concatenate(img), np.concatenate(txt)


def test_load_embeddings_concatenates_parts_in_numeric_order(tmp_path):
    sizes = [3, 1, 2, 4, 1, 1, 2, 1, 1, 1, 2, 3]  # 12 parts: _10 and _11 come after _9
    img, txt = write_parts(tmp_path / "emb", sizes)
    e = clipshard.load_embeddings(tmp_path / "emb")
    assert e.image.dtype == np.float16 and e.image.shape == (sum(sizes), 4)
    np.testing.assert_array_equal(e.image, img)
    np.testing.assert_array_equal(e.text, txt)
    assert [m["id"] for m in e.metadata] == list(range(sum(sizes)))
    one = tmp_path / "one"
    write_parts(one, [5])
    m = clipshard.load_embeddings(one, mmap=True)
    assert isinstance(m.image, np.memmap) and m.image.shape == (5, 4)


def test_load_embeddings_refuses_inconsistent_parts(tmp_path):
    write_parts(tmp_path / "gap", [2, 2, 2])
    (tmp_path / "gap" / "img_emb" / "img_emb_1.npy").unlink()
    with pytest.raises(ValueError, match="not consecutive"):
        clipshard.load_embeddings(tmp_path / "gap")
    write_parts(tmp_path / "short", [2, 2], text=False)
    np.save(tmp_path / "short" / "text_emb" / "text_emb_0.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="row counts differ"):
        clipshard.load_embeddings(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        clipshard.load_embeddings(tmp_path / "absent")
    only_images = tmp_path / "images"
    write_parts(only_images, [2], text=False, meta=False)
    e = clipshard.load_embeddings(only_images)
    assert e.text is None and e.metadata == [] and e.image.shape == (2, 4)


def test_load_embeddings_reads_what_clipshard_export_writes(binary, dataset, tmp_path):
    """A real run exported by `clipshard export`: the loader gives the output rows that have
    embeddings, in order, and cos(image, text) reproduces each row's clip_score."""
    import subprocess
    data, _ = dataset
    result = clipshard.run(pipeline_config(data, tmp_path / "run", threshold=0.0), binary)
    subprocess.run([binary, "export", str(tmp_path / "run"), "--to", str(tmp_path / "emb"),
                    "--rows-per-file", "4"], check=True, capture_output=True)
    e = clipshard.load_embeddings(tmp_path / "emb")
    out = list(result.rows())
    assert len(out) == 8  # threshold 0 keeps the two bad rows, which have no embeddings
    assert e.metadata == [r for r in out if r["clip_score"] != 0.0]
    assert e.image.dtype == np.float32 and e.image.shape == e.text.shape == (6, e.image.shape[1])
    cos = (e.image.astype(np.float64) * e.text).sum(axis=1)
    np.testing.assert_allclose(np.clip((cos + 1) / 2, 0, 1),
                               [r["clip_score"] for r in e.metadata], atol=1e-5)
    assert len(list((tmp_path / "emb" / "img_emb").iterdir())) == 2  # 6 rows, 4 per file


class ListStorage:
    """DataFlow's storage protocol over a list of dicts: read("dataframe") / write(rows)."""

    def __init__(self, rows):
        self.rows = [dict(r) for r in rows]
        self.reads = []

    def read(self, output_type):
        self.reads.append(output_type)
        return [dict(r) for r in self.rows]

    def write(self, data):
        self.rows = list(data)


class Frame:
    """The slice of the pandas.DataFrame API the operators use (no pandas on this machine)."""

    def __init__(self, rows, index=None):
        self.rows = [dict(r) for r in rows]
        self.index = list(range(len(rows))) if index is None else index

    def to_dict(self, orient):
        assert orient == "records"
        return [dict(r) for r in self.rows]

    def __setitem__(self, key, values):
        for r, v in zip(self.rows, values):
            r[key] = v

    @property
    def iloc(self):
        frame = self

        class ILoc:
            def __getitem__(self, positions):
                return Frame([frame.rows[i] for i in positions], [frame.index[i] for i in positions])

        return ILoc()


class FrameStorage(ListStorage):
    def read(self, output_type):
        self.reads.append(output_type)
        return Frame(self.rows)

    def write(self, data):
        self.written = data
        self.rows = data.rows


def test_signatures_match_dataflow_mm():
    def params(f):
        return {n: p.default for n, p in inspect.signature(f).parameters.items()
                if n != "self" and p.kind == p.POSITIONAL_OR_KEYWORD}

    assert params(clipshard.ImageCLIPEvaluator.__init__) == {
        "model_name": "openai/clip-vit-base-patch32", "device": None}
    assert params(clipshard.ImageLongCLIPEvaluator.__init__) == {
        "model_name": "BeichenZhang/LongCLIP-L-336px", "device": None}
    assert params(clipshard.ImageClipFilter.__init__) == {
        "model_name": "openai/clip-vit-base-patch32", "device": None}
    empty = inspect.Parameter.empty
    assert params(clipshard.ImageCLIPEvaluator.run) == {
        "storage": empty, "input_image_key": "image_path", "input_text_key": "text",
        "output_key": "clip_score"}
    assert params(clipshard.ImageLongCLIPEvaluator.run) == {
        "storage": empty, "input_image_key": "image_path", "input_text_key": "text",
        "output_key": "longclip_score"}
    assert params(clipshard.ImageClipFilter.run) == {
        "storage": empty, "input_image_key": "image", "input_caption_key": "caption",
        "threshold": 0.25}


def test_operators_through_storage_match_a_direct_run(binary, dataset, tmp_path, monkeypatch):
    data, rows = dataset
    direct = clipshard.run(pipeline_config(data, tmp_path / "direct", threshold=0.0), binary)
    direct_scores = {r["id"]: r["clip_score"] for r in direct.rows()}
    monkeypatch.chdir(data)  # DataFlow-MM resolves relative image paths against the cwd

    storage = ListStorage(rows)
    evaluator = clipshard.ImageCLIPEvaluator(str(TINY_MODEL), "cpu", binary=binary)
    assert evaluator.run(storage, input_image_key="image", input_text_key="caption") == [
        "clip_score"]
    assert storage.reads == ["dataframe"]
    assert [r["id"] for r in storage.rows] == list(range(8))
    for r in storage.rows:
        assert r["clip_score"] == pytest.approx(direct_scores[r["id"]], abs=1e-6)
        assert "__clipshard_row" not in r
    assert storage.rows[3]["clip_score"] == 0.0 and storage.rows[5]["clip_score"] == 0.0
    assert {e["line"] for e in evaluator.last_errors} == {4, 6}

    # The filter on a DataFrame-like: the kept rows with their index; threshold 0 keeps every
    # row (bad ones too, sim 0 >= 0: DataFlow-MM's rule); above 1 keeps none.
    filt = clipshard.ImageClipFilter(str(TINY_MODEL), "cpu", binary=binary,
                                     run_dir=tmp_path / "kept")
    frames = FrameStorage(rows)
    filt.run(frames, input_image_key="image", input_caption_key="caption", threshold=0.0)
    assert frames.written.index == list(range(8))
    filt.run(frames, input_image_key="image", input_caption_key="caption", threshold=1.01)
    assert frames.written.rows == []
    frames = FrameStorage(rows)
    filt.run(frames, input_image_key="image", input_caption_key="caption", threshold=0.1)
    summary = json.loads((tmp_path / "kept" / "summary.json").read_text())
    assert len(frames.written.rows) == summary["operators"][0]["kept"]
    assert frames.written.index == [r["id"] for r in frames.written.rows]
    monkeypatch.chdir(tmp_path)
    pipeline = clipshard.run(pipeline_config(data, tmp_path / "direct01", threshold=0.1), binary)
    assert frames.written.index == [r["id"] for r in pipeline.rows()]
    assert all("clip_score" not in r for r in frames.written.rows)


def test_installs_offline_into_a_venv(tmp_path):
    """The documented command: a venv over Debian's packages, pip without network or build
    isolation (on a copy, so the source tree gets no build/ or egg-info)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if not sys.executable.startswith("/usr/bin/"):
        pytest.skip("needs Debian's /usr/bin/python3 (python3-venv, python3-pip)")
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[1], src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    venv = tmp_path / "v"
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"python3 -m venv unavailable (install python3-venv): {made.stderr[-300:]}")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--no-build-isolation",
                    "-q", str(src)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import clipshard; print(clipshard.__file__)"],
                         cwd=tmp_path, check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert out.startswith(str(venv)), out
