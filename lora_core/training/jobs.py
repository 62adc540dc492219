"""Short background jobs beside the runs: a playground prediction or a merge, each in a process of its own.

A job is a folder `WORKSPACE/jobs/<job id>/` keyed like a run: request.json (what to do), status.json (state,
pid), result.json (what `predict` or `merge_run` returned) and job.log. The app starts it and reads the folder;
no model object lives in the app, so two users never share one. `python -m lora_core.training.jobs JOB_DIR`
runs one job.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lora_core.training.registry import ROOT, RUN_ID_PATTERN, process_alive
from lora_core.training.run_folder import read_json, write_json_atomic

KINDS = ("predict", "merge")
MAX_RUNNING_ENV = "LORA_MAX_JOBS"
DEFAULT_MAX_RUNNING = 4
FINAL = ("done", "failed")
KEEP_JOBS = 200  # older finished job folders are removed as new ones start


class JobError(ValueError):
    """A job that cannot start or be read; the message says why."""


class Jobs:
    """Starts job processes (at most `max_running` at once) and reads their folders."""

    def __init__(self, workspace: Path, max_running: int | None = None):
        self.workspace = Path(workspace).resolve()
        self.root = self.workspace / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        env_cap = os.environ.get(MAX_RUNNING_ENV, "")
        self.max_running = max_running or (int(env_cap) if env_cap.isdigit() and int(env_cap) > 0
                                           else DEFAULT_MAX_RUNNING)
        self.processes: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.counter = 0

    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not RUN_ID_PATTERN.match(job_id):
            raise JobError(f"{job_id!r} is not a job id.")
        path = self.root / job_id
        if not (path / "request.json").is_file():
            raise JobError(f"There is no job {job_id!r}.")
        return path

    def running(self) -> list[str]:
        return [job_id for job_id, process in self.processes.items() if process.poll() is None]

    def start(self, kind: str, request: dict) -> str:
        """Write the request and start its process; refused (JobError) when `max_running` jobs already run."""
        if kind not in KINDS:
            raise JobError(f"Unknown job kind {kind!r}.")
        with self.lock:
            if len(self.running()) >= self.max_running:
                raise JobError(f"{self.max_running} jobs are already running here; wait for one to finish "
                               "and try again.")
            self.counter += 1
            job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{os.getpid()}-{self.counter}"
            path = self.root / job_id
            path.mkdir(parents=True)
            write_json_atomic(path / "request.json", {"kind": kind, **request})
            write_json_atomic(path / "status.json", {"state": "starting", "kind": kind, "created_at": time.time()})
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
            try:
                with open(path / "job.log", "ab") as log:
                    process = subprocess.Popen([sys.executable, "-m", "lora_core.training.jobs", str(path)], cwd=ROOT,
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True)
            except OSError as error:
                write_json_atomic(path / "status.json", {"state": "failed", "kind": kind,
                                                         "message": f"The job could not start: {error}"})
                raise JobError(f"The job could not start: {error}") from None
            self.processes[job_id] = process
            update(path, pid=process.pid)
        threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends
        self.prune()
        return job_id

    def read(self, job_id: str) -> dict:
        """status.json, with `result` once done; a job whose process died without a word is marked failed."""
        path = self.folder(job_id)
        status = read_json(path / "status.json", {}) or {}
        if status.get("state") not in FINAL:
            process = self.processes.get(job_id)
            alive = process.poll() is None if process is not None else process_alive(status.get("pid"))
            if not alive:
                status = read_json(path / "status.json", {}) or {}
                if status.get("state") not in FINAL:
                    tail = (path / "job.log").read_text(errors="replace").strip().splitlines()[-1:] \
                        if (path / "job.log").exists() else []
                    status = update(path, state="failed", message="The job ended without a result"
                                    + (f": {tail[0][:300]}" if tail else "."))
        if status.get("state") == "done":
            status["result"] = read_json(path / "result.json")
        status["job_id"] = job_id
        return status

    def wait(self, job_id: str, timeout: float = 600, poll: float = 0.25) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.read(job_id)
            if status.get("state") in FINAL or time.monotonic() > deadline:
                return status
            time.sleep(poll)

    def prune(self) -> None:
        finished = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name not in self.processes)
        for path in finished[:-KEEP_JOBS] if len(finished) > KEEP_JOBS else []:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def update(path: Path, **fields) -> dict:
    status = read_json(Path(path) / "status.json", {}) or {}
    status.update(fields, updated_at=time.time())
    write_json_atomic(Path(path) / "status.json", status)
    return status


def predict_request_from(data: dict):
    from lora_core.training.predict import HistoryStep, PredictRequest

    history = [HistoryStep(answer=s.get("answer"), thinking=s.get("thinking") or "", action=s.get("action"),
                           action_abs=s.get("action_abs"), image=Path(s["image"]) if s.get("image") else None)
               for s in data.get("history") or []]
    return PredictRequest(image=Path(data["image"]), task=data.get("task") or "", run_id=data.get("run_id"),
                          checkpoint=str(data.get("checkpoint") or "best"), history=history,
                          workspace=Path(data["workspace"]), model=data.get("model"), max_dim=data.get("max_dim"),
                          max_new_tokens=data.get("max_new_tokens"))


def run_job(path: Path) -> int:
    path = Path(path)
    request = read_json(path / "request.json", {}) or {}
    update(path, state="running", pid=os.getpid(), started_at=time.time())
    try:
        if request.get("kind") == "predict":
            from lora_core.training.predict import predict

            result = predict(predict_request_from(request))
        elif request.get("kind") == "merge":
            from lora_core.training.merge import merge_run

            result = merge_run(Path(request["workspace"]), request["run_id"], request.get("checkpoint", "best"),
                               Path(request["out"]) if request.get("out") else None, request.get("dtype", "auto"))
        else:
            raise JobError(f"Unknown job kind {request.get('kind')!r}.")
    except Exception as error:  # recorded for the UI: one sentence
        import traceback

        traceback.print_exc()
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        update(path, state="failed", message=text, finished_at=time.time())
        return 1
    write_json_atomic(path / "result.json", result)
    update(path, state="done", finished_at=time.time())
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m lora_core.training.jobs JOB_DIR", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(run_job(Path(sys.argv[1])))
