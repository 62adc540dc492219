"""Run registry and launcher: each run is a folder (run_folder.py) and a process, keyed by run id.

A process is started without a shell and in its own session; stop asks it (SIGTERM and a STOP file)
to save a checkpoint and end, kill ends it at once. Why a run failed is read from its train.log
(log_diagnosis.py). This module imports nothing heavy: the app imports it at start.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lora_core.training.log_diagnosis import classify_failure
from lora_core.training.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]  # the repository: run processes start there
RUNNING_STATES = ("queued", "starting", "loading", "training", "stopping", "evaluating")
FINAL_STATES = ("finished", "stopped", "failed")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
DEMO_MAX_STEPS = 60


class RunError(ValueError):
    """A request about runs that cannot be done; the message says why."""


@dataclass
class RunSummary:
    run_id: str
    name: str
    state: str
    step: int = 0
    max_steps: int = 0
    eta_s: float | None = None
    last_loss: float | None = None
    eval_loss: float | None = None
    reason: str | None = None
    message: str | None = None
    created_at: float = 0.0
    status: dict = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def progress(self) -> str:
        if not self.max_steps:
            return self.state
        return f"{self.step}/{self.max_steps}"


def slug(text: str) -> str:
    value = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return value[:40] or "run"


def process_alive(pid: int | None, needle: str | None = None) -> bool:
    """Whether pid is a live process (and, where /proc says, one whose command line holds `needle`)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().split(")")[-1].split()[0] == "Z":
                return False  # a zombie: finished, not yet reaped
            if needle and needle not in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                return False  # the pid was reused by another program
        except OSError:
            return False
    return True


class RunManager:
    """Creates run folders, starts and stops their processes, and reads their state."""

    def __init__(self, workspace: Path, demo: bool = False, demo_max_steps: int = DEMO_MAX_STEPS):
        self.workspace = Path(workspace).resolve()
        self.runs_dir = self.workspace / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.demo = demo
        self.demo_max_steps = demo_max_steps
        self.processes: dict[str, subprocess.Popen] = {}
        self.eval_processes: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    # -- folders

    def folder(self, run_id: str) -> RunFolder:
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            raise RunError(f"{run_id!r} is not a run id.")
        path = self.runs_dir / run_id
        if not (path / "config.yaml").is_file():
            raise RunError(f"There is no run {run_id!r} (it may have been deleted).")
        return RunFolder(path)

    def new_run_id(self, name: str | None) -> str:
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name or 'run')}"
        run_id, number = base, 2
        while (self.runs_dir / run_id).exists():
            run_id, number = f"{base}-{number}", number + 1
        return run_id

    def create(self, config, name: str | None = None) -> RunFolder:
        """A new run folder holding the config (demo mode: embedded model, capped steps, no paths)."""
        from lora_core.training.config import dump_yaml

        config = self.demo_limited(config) if self.demo else config.copy()
        if name:
            config.name = name
        with self.lock:
            run_id = self.new_run_id(config.name)
            path = self.runs_dir / run_id
            path.mkdir(parents=True)
        (path / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
        folder = RunFolder(path)
        folder.update_status(state="created", created_at=time.time(), name=config.name or run_id)
        return folder

    def demo_limited(self, config):
        config = config.copy()
        config.model = "embedded"
        config.data.path = None
        config.training.use_4bit = False
        config.training.gpus = 1
        if config.sft.max_steps < 0 or config.sft.max_steps > self.demo_max_steps:
            config.sft.max_steps = self.demo_max_steps
        return config

    # -- launching

    def preflight(self, config, data_path: Path | None = None) -> list[str]:
        """Sentences saying why this config cannot launch here (empty when it can)."""
        from lora_core.training.config import launch_problems

        problems = launch_problems(config, cuda_available(), demo=self.demo)
        if data_path is not None and self.demo:
            problems.append("The public demo trains on the demo trajectories only; it accepts no dataset path.")
        elif data_path is not None and not Path(data_path).is_file():
            problems.append(f"The dataset {data_path} does not exist.")
        return problems

    def command(self, folder: RunFolder, data_path: Path | None, gpus: int = 1) -> list[str]:
        train = ["-m", "lora_core.train", "--config", str(folder.config_path), "--workspace", str(self.workspace)]
        if data_path is not None:
            train += ["--data", str(Path(data_path).resolve())]
        if gpus > 1:
            return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
                    *train]
        return [sys.executable, *train]

    def launch(self, run_id: str, data_path: Path | None = None) -> RunFolder:
        folder = self.folder(run_id)
        config = folder.load_config()
        problems = self.preflight(config, data_path)
        if problems:
            folder.update_status(state="failed", reason="no CUDA" if "CUDA" in problems[0] else "bad config",
                                 message=problems[0], finished_at=time.time())
            raise RunError(problems[0])
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LORA_RUN_LOG_ATTACHED": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
                   [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        folder.update_status(state="queued", queued_at=time.time())
        with open(folder.log_path, "ab") as log:
            process = subprocess.Popen(self.command(folder, data_path, config.training.gpus), cwd=ROOT,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        folder.update_status(pid=process.pid, launcher_pid=os.getpid())
        with self.lock:
            self.processes[run_id] = process
        return folder

    def start(self, config, name: str | None = None, data_path: Path | None = None) -> str:
        """Check, create and launch in one go; returns the run id. Refused before any folder is made."""
        checked = self.demo_limited(config) if self.demo else config
        problems = self.preflight(checked, data_path)
        if problems:
            raise RunError(problems[0])
        folder = self.create(config, name)
        self.launch(folder.run_id, data_path)
        return folder.run_id

    def stop(self, run_id: str) -> str:
        """Ask the run to save a checkpoint and end after the current step."""
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        if status.get("state") not in RUNNING_STATES:
            return f"{run_id} is not running ({status.get('state', 'unknown')})."
        folder.request_stop()
        pid = status.get("pid")
        if pid and process_alive(pid):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass
        return f"Stopping {run_id}: it saves a checkpoint at the end of the current step."

    def kill(self, run_id: str) -> str:
        """End the run's process group at once (no checkpoint)."""
        status = self.refresh(run_id)
        pid = status.get("pid")
        if status.get("state") not in RUNNING_STATES or not pid:
            return f"{run_id} is not running."
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except OSError:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        process = self.processes.get(run_id)
        if process is not None:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.refresh(run_id)
        return f"Killed {run_id}."

    def delete(self, run_id: str) -> None:
        folder = self.folder(run_id)
        if self.refresh(run_id).get("state") in RUNNING_STATES:
            raise RunError(f"{run_id} is still running; stop it first.")
        shutil.rmtree(folder.path)

    # -- reading state

    def refresh(self, run_id: str) -> dict:
        """status.json, corrected when its process is gone without writing a final state."""
        folder = self.folder(run_id)
        status = folder.read_status()
        if status.get("state") not in RUNNING_STATES:
            return status
        process = self.processes.get(run_id)
        if process is not None:
            returncode = process.poll()
            if returncode is None:
                return status
            status = folder.read_status()  # it may have written its final state just before exiting
            if status.get("state") not in RUNNING_STATES:
                return status
        else:
            returncode = None
            if process_alive(status.get("pid"), needle=str(folder.config_path)) or (
                    status.get("state") == "queued" and time.time() - status.get("queued_at", 0) < 30):
                return status
        reason, message = classify_failure(returncode, folder.log_tail(60))
        return folder.update_status(state="failed", reason=reason, message=message, finished_at=time.time(),
                                    returncode=returncode)

    def summary(self, run_id: str) -> RunSummary:
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        metrics = folder.read_metrics()
        losses = [m["loss"] for m in metrics if m.get("kind") == "train" and isinstance(m.get("loss"), (int, float))]
        evals = [m["eval_loss"] for m in metrics if isinstance(m.get("eval_loss"), (int, float))]
        return RunSummary(run_id, status.get("name") or run_id, status.get("state", "unknown"),
                          int(status.get("step") or 0), int(status.get("max_steps") or 0), status.get("eta_s"),
                          losses[-1] if losses else None, evals[-1] if evals else None, status.get("reason"),
                          status.get("message"), status.get("created_at") or folder.path.stat().st_mtime, status)

    def list_runs(self) -> list[RunSummary]:
        """Every run in the workspace, newest first (running and finished alike)."""
        summaries = []
        for path in self.runs_dir.iterdir() if self.runs_dir.exists() else []:
            if path.is_dir() and (path / "config.yaml").is_file() and RUN_ID_PATTERN.match(path.name):
                try:
                    summaries.append(self.summary(path.name))
                except (RunError, OSError):
                    continue
        return sorted(summaries, key=lambda s: (s.created_at, s.run_id), reverse=True)

    def running(self) -> list[str]:
        return [s.run_id for s in self.list_runs() if s.running]

    # -- evaluation on demand

    def evaluate(self, run_id: str, max_dim: int | None = None, max_samples: int | None = None) -> str:
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        if status.get("state") in RUNNING_STATES:
            raise RunError(f"{run_id} is still training; evaluate it when it has finished or stopped.")
        if not folder.adapter_path.joinpath("adapter_config.json").exists():
            raise RunError(f"{run_id} has no adapter to evaluate (it ended before saving one).")
        process = self.eval_processes.get(run_id)
        if process is not None and process.poll() is None:
            raise RunError(f"{run_id} is already being evaluated.")
        command = [sys.executable, "-m", "lora_core.evaluate", "--run", str(folder.path), "--workspace",
                   str(self.workspace)]
        if max_dim:
            command += ["--max-dim", str(int(max_dim))]
        if max_samples:
            command += ["--max-samples", str(int(max_samples))]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LORA_RUN_LOG_ATTACHED": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
        with open(folder.log_path, "ab") as log:
            self.eval_processes[run_id] = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                                           stderr=subprocess.STDOUT, env=env,
                                                           start_new_session=True)
        return f"Evaluating {run_id} on its validation samples" + (f" at max_dim {max_dim}." if max_dim else ".")

    def evaluation_running(self, run_id: str) -> bool:
        process = self.eval_processes.get(run_id)
        if process is not None:
            return process.poll() is None
        data = self.folder(run_id).read_eval() or {}
        return data.get("state") == "running" and process_alive(data.get("pid"), needle="lora_core.evaluate")

    def shutdown(self) -> None:
        """Leave runs going (they are independent processes); only reap finished children."""
        for process in list(self.processes.values()) + list(self.eval_processes.values()):
            process.poll()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
