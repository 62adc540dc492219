"""One run's folder and the files in it, read and written safely.

The folder (DESIGN.md) holds config.yaml, status.json, metrics.jsonl, train.log, checkpoint-N/, adapter/,
predictions.jsonl and eval.json. The trainer writes them; everything else only reads them, so a browser
reload or an app restart finds every run again. This module imports nothing heavy: the app imports it at start.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no file locks (one process writes at a time there)
    fcntl = None

EVAL_LOCK_FD_ENV = "LORA_EVAL_LOCK_FD"  # the evaluation lock's descriptor, handed to the evaluate process


def write_json_atomic(path: Path, data) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


# metrics.jsonl path -> ((mtime_ns, size), records)
METRICS_CACHE: dict[Path, tuple[tuple[int, int], list[dict]]] = {}


class RunFolder:
    """The files of one run; the trainer writes them, the app reads them."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.yaml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    log_path = property(lambda self: self.path / "train.log")
    adapter_path = property(lambda self: self.path / "adapter")
    predictions_path = property(lambda self: self.path / "predictions.jsonl")
    eval_path = property(lambda self: self.path / "eval.json")
    stop_path = property(lambda self: self.path / "STOP")
    kill_path = property(lambda self: self.path / "KILL")  # a SIGTERM after it ends the trainer at once
    status_lock_path = property(lambda self: self.path / ".status.lock")
    eval_lock_path = property(lambda self: self.path / ".eval.lock")

    def read_status(self) -> dict:
        status = read_json(self.status_path, {})
        return status if isinstance(status, dict) else {}

    @contextlib.contextmanager
    def status_lock(self):
        """The status file's lock (flock on .status.lock): held around every read-modify-write of status.json,
        so the launcher, the trainer's ranks and the app never lose each other's fields."""
        if fcntl is None:
            yield
            return
        handle = os.open(self.status_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock

    def update_status(self, defaults: dict | None = None, **fields) -> dict:
        """Merge `fields` into status.json (and `defaults` where the key is missing), under the status lock;
        the file is replaced by a rename, so a reader never sees half of it."""
        with self.status_lock():
            status = self.read_status()
            for key, value in (defaults or {}).items():
                status.setdefault(key, value)
            status.update(fields)
            status["updated_at"] = time.time()
            write_json_atomic(self.status_path, status)
        return status

    def append_metric(self, record: dict) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def read_metrics(self) -> list[dict]:
        """Every complete record of metrics.jsonl (re-read only when the file changed: the UI polls it)."""
        try:
            stat = self.metrics_path.stat()
        except OSError:
            return []
        key = (stat.st_mtime_ns, stat.st_size)
        cached = METRICS_CACHE.get(self.metrics_path)
        if cached is not None and cached[0] == key:
            return list(cached[1])
        records = []
        try:
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return records
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if isinstance(record, dict):
                records.append(record)
        if len(METRICS_CACHE) > 256:
            METRICS_CACHE.clear()
        METRICS_CACHE[self.metrics_path] = (key, records)
        return list(records)

    def last_eval_loss(self) -> float | None:
        losses = [r["eval_loss"] for r in self.read_metrics() if isinstance(r.get("eval_loss"), (int, float))]
        return losses[-1] if losses else None

    def log_tail(self, lines: int = 40) -> list[str]:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 64 * 1024))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def request_stop(self) -> None:
        self.stop_path.write_text(str(time.time()))

    def try_evaluation_lock(self) -> int | None:
        """Take the run's evaluation lock (flock, non-blocking): a descriptor that holds it, or None when another
        process (an evaluation) holds it. The lock is released when every copy of the descriptor is closed,
        that is when the process holding it ends."""
        if fcntl is None:
            return os.open(os.devnull, os.O_RDONLY)
        inherited = os.environ.get(EVAL_LOCK_FD_ENV)
        if inherited:  # taken by the launcher for this process and passed down (the same open file)
            try:
                handle = int(inherited)
                if os.path.samestat(os.fstat(handle), os.stat(self.eval_lock_path)):
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
            except (OSError, ValueError):
                pass
        handle = os.open(self.eval_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            return None
        return handle

    def evaluation_locked(self) -> bool:
        """Whether an evaluation holds the lock right now (taken and given back at once when free)."""
        if fcntl is None or not self.eval_lock_path.exists():
            return False
        handle = os.open(self.eval_lock_path, os.O_RDWR)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(handle)
        return False

    def read_eval(self) -> dict | None:
        data = read_json(self.eval_path)
        return data if isinstance(data, dict) else None

    def read_predictions(self) -> list[dict]:
        rows = []
        try:
            for line in self.predictions_path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        except OSError:
            pass
        return rows

    def load_config(self):
        from lora_core.training.config import load_config

        return load_config(self.config_path).config


def default_workspace(config_path: Path) -> Path:
    """runs/<id>/config.yaml lives in a workspace: two folders up when the parent is `runs`."""
    if os.environ.get("LORA_WORKSPACE"):
        return Path(os.environ["LORA_WORKSPACE"])
    folder = Path(config_path).resolve().parent
    if folder.parent.name == "runs":
        return folder.parent.parent
    return Path("workspace")
