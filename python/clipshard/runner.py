"""Running the clipshard binary and reading what a run writes (docs/FORMATS.md)."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Exit status of a run stopped by a signal: run the same command again to resume.
EXIT_INTERRUPTED = 75


class ClipshardError(RuntimeError):
    """The binary could not be found, or a run failed; `returncode` and `stderr` say how."""

    def __init__(self, message: str, returncode: Optional[int] = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def find_binary(binary: Optional[PathLike] = None) -> str:
    """The clipshard executable: `binary` if given, else $CLIPSHARD_BINARY, else `clipshard` on
    PATH. Raises ClipshardError naming what was tried when none is an executable file."""
    tried = []
    candidates = []
    if binary is not None:
        candidates.append(("argument", os.fspath(binary)))
    elif os.environ.get("CLIPSHARD_BINARY"):
        candidates.append(("CLIPSHARD_BINARY", os.environ["CLIPSHARD_BINARY"]))
    else:
        found = shutil.which("clipshard")
        if found:
            candidates.append(("PATH", found))
        tried.append("clipshard on PATH")
    for origin, path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        tried.append(f"{path} ({origin})")
    raise ClipshardError("no clipshard executable found; tried: " + ", ".join(tried) +
                         " (pass binary=..., set CLIPSHARD_BINARY or put clipshard on PATH)")


def iter_jsonl(path: PathLike) -> Iterator[Dict[str, Any]]:
    """Yields each non-blank line of a JSONL file as a dict, one at a time (constant memory)."""
    with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not JSON: {e}") from None


def iter_rows(run_dir: PathLike) -> Iterator[Dict[str, Any]]:
    """The rows of `run_dir/output.jsonl`, in input order, as dicts."""
    return iter_jsonl(Path(run_dir) / "output.jsonl")


def iter_errors(run_dir: PathLike) -> Iterator[Dict[str, Any]]:
    """The records of `run_dir/errors.jsonl` ({manifest, line, reason, message, ...})."""
    return iter_jsonl(Path(run_dir) / "errors.jsonl")


def load_summary(run_dir: PathLike) -> Dict[str, Any]:
    """`run_dir/summary.json` as a dict (written when a run finishes)."""
    with open(Path(run_dir) / "summary.json", "r", encoding="utf-8") as f:
        return json.load(f)


class RunResult:
    """A finished run: its directory and the readers of what it wrote."""

    def __init__(self, run_dir: PathLike, returncode: int, stderr: str):
        self.run_dir = Path(run_dir)
        self.returncode = returncode
        self.stderr = stderr  # the run's log (progress lines, per-operator summary lines)

    def rows(self) -> Iterator[Dict[str, Any]]:
        return iter_rows(self.run_dir)

    def errors(self) -> Iterator[Dict[str, Any]]:
        return iter_errors(self.run_dir)

    def summary(self) -> Dict[str, Any]:
        return load_summary(self.run_dir)

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    def __repr__(self) -> str:
        return f"RunResult({str(self.run_dir)!r}, returncode={self.returncode})"


def run(config: Union[Mapping[str, Any], PathLike],
        binary: Optional[PathLike] = None,
        *,
        restart: bool = False,
        sets: Sequence[str] = (),
        launcher: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None) -> RunResult:
    """Runs `clipshard run` on `config` (a dict as in docs/CONFIG.md, or the path of a config
    file) and waits for it. `sets` are `--set KEY=VALUE` overrides; `launcher` is prepended to the
    command (e.g. ["mpirun", "-np", "5"]). Returns a RunResult; raises ClipshardError with the
    run's stderr when it fails, also for exit status 75 (stopped by a signal: run again to
    resume)."""
    exe = find_binary(binary)
    with tempfile.TemporaryDirectory(prefix="clipshard-config-") as tmp:
        if isinstance(config, Mapping):
            config_path = os.path.join(tmp, "config.json")
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(config, f)
            run_dir = config.get("output_dir")
        else:
            config_path = os.fspath(config)
            with open(config_path, "r", encoding="utf-8") as f:
                run_dir = json.load(f).get("output_dir")
        cmd: List[str] = [*launcher, exe, "run", config_path]
        for s in sets:
            cmd += ["--set", s]
            if s.startswith("output_dir="):
                value = s.split("=", 1)[1]
                try:
                    run_dir = json.loads(value)
                except json.JSONDecodeError:
                    run_dir = value
        if restart:
            cmd.append("--restart")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              errors="replace", env=None if env is None else dict(env),
                              timeout=timeout)
    if proc.returncode != 0:
        what = ("stopped by a signal; run again to resume"
                if proc.returncode == EXIT_INTERRUPTED else "failed")
        raise ClipshardError(
            f"clipshard run {what} (exit status {proc.returncode}): {proc.stderr.strip()[-2000:]}",
            proc.returncode, proc.stderr)
    if not run_dir:
        raise ClipshardError("the config has no output_dir", proc.returncode, proc.stderr)
    return RunResult(run_dir, proc.returncode, proc.stderr)
