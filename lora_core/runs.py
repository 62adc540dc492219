"""Run registry and launcher: each run is a folder and a process, keyed by run id.

The folder (DESIGN.md) holds config.yaml, status.json, metrics.jsonl, train.log, checkpoint-N/, adapter/,
predictions.jsonl and eval.json. The trainer writes them; everything else only reads them, so a browser
reload or an app restart finds every run again. A process is started without a shell and in its own
session; stop asks it (SIGTERM and a STOP file) to save a checkpoint and end, kill ends it at once.
This module imports nothing heavy: the app imports it at start.
"""
from __future__ import annotations

import json
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

ROOT = Path(__file__).resolve().parent.parent
FAILURE_REASONS = ("out of memory", "no CUDA", "bad data", "bad config", "killed", "error")
RUNNING_STATES = ("queued", "starting", "loading", "training", "stopping", "evaluating")
FINAL_STATES = ("finished", "stopped", "failed")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
DEMO_MAX_STEPS = 60


class RunError(ValueError):
    """A request about runs that cannot be done; the message says why."""


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

    def read_status(self) -> dict:
        status = read_json(self.status_path, {})
        return status if isinstance(status, dict) else {}

    def update_status(self, **fields) -> dict:
        status = self.read_status()
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
        from .run_config import load_config

        return load_config(self.config_path).config


# ----------------------------------------------------------------- the seed's §1 warnings, explained


@dataclass(frozen=True)
class KnownWarning:
    pattern: str
    title: str
    explanation: str
    source: str = "seed §1"


KNOWN_WARNINGS = [
    KnownWarning(r"tokenizer.*deprecated|deprecated.*\btokenizer\b|processing_class",
                 "tokenizer is deprecated",
                 "Trainer's `tokenizer` argument was renamed `processing_class` in transformers 5. Harmless now; "
                 "code that passes `tokenizer=` must change when it upgrades."),
    KnownWarning(r"kernel version .*below|below the recommended minimum",
                 "old Linux kernel",
                 "The Linux kernel is older than PyTorch recommends (CentOS 7 ships 3.10). Training usually works; "
                 "in rare cases a process can hang."),
    KnownWarning(r"already (on|dispatched on) multiple devices|model is already on multiple devices",
                 "model already on multiple devices",
                 "The model was spread over several GPUs when it loaded, so the Trainer does not move it again. "
                 "Expected with several GPUs."),
    KnownWarning(r"new PAD/BOS/EOS tokens|PAD/BOS/EOS tokens that differ",
                 "tokenizer has new PAD/BOS/EOS tokens",
                 "The tokenizer's special tokens differ from the model config; transformers aligned the config to "
                 "the tokenizer. Qwen uses ChatML (<|im_start|>/<|im_end|>) and has no BOS token, so "
                 "`bos_token_id: None` is correct (seed §1.1). Nothing to do."),
    KnownWarning(r"use_cache=True.*incompatible with gradient checkpointing|use_cache.*checkpointing",
                 "use_cache=True incompatible with gradient checkpointing",
                 "Gradient checkpointing recomputes activations, which cannot coexist with the KV cache, so the "
                 "cache is switched off for training. Expected; generation after training uses the cache again."),
    KnownWarning(r"gemm_4bit_forward from kernels-community|pip install kernels",
                 "bitsandbytes: kernels package missing",
                 "bitsandbytes looks for optional CPU 4-bit kernels from a hub package; it is deliberately not "
                 "installed (it would download kernels). Harmless: 4-bit training runs on CUDA only here.",
                 "ours"),
    KnownWarning(r"`gradient_checkpointing` is deprecated|is_gradient_checkpointing` is deprecated",
                 "gradient_checkpointing renamed",
                 "transformers 5 calls the flag `activation_checkpointing`; the old name still works until v6. "
                 "The seed's YAML key `gradient_checkpointing` is translated for you.",
                 "ours"),
]


def explain_line(line: str) -> KnownWarning | None:
    for known in KNOWN_WARNINGS:
        if re.search(known.pattern, line, re.I):
            return known
    return None


def explain_log(lines: list[str]) -> list[tuple[str, KnownWarning | None]]:
    return [(line, explain_line(line)) for line in lines]


def recognised_warnings(lines: list[str]) -> list[KnownWarning]:
    seen = []
    for _, known in explain_log(lines):
        if known is not None and known not in seen:
            seen.append(known)
    return seen


# ----------------------------------------------------------------- failures


def classify_failure(returncode: int | None, log_lines: list[str]) -> tuple[str, str]:
    """Why a process ended without recording a result: (reason, sentence)."""
    text = "\n".join(log_lines)
    last = next((line for line in reversed(log_lines) if line.strip()), "")
    recorded = re.search(r"RUN FAILED \(([^)]*)\): (.*)", text)
    if recorded and recorded.group(1) in FAILURE_REASONS:
        return recorded.group(1), recorded.group(2)
    if re.search(r"out of memory|OutOfMemoryError|MemoryError", text, re.I):
        return "out of memory", f"The run ran out of memory: {last.strip()[:300]}"
    if re.search(r"no CUDA|CUDA (is )?not available|Torch not compiled with CUDA|no NVIDIA driver", text, re.I):
        return "no CUDA", f"The run needs a CUDA GPU and found none: {last.strip()[:300]}"
    if returncode is not None and returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return "killed", ("The process was killed (SIGKILL): by a user, or by the system when memory ran out. "
                          "No checkpoint was written after the last save.")
    if returncode is not None and returncode < 0:
        return "killed", f"The process was ended by signal {-returncode} before it recorded a result."
    if returncode is None:
        return "killed", ("The process is gone without recording a result (killed, or the machine restarted). "
                          "Checkpoints already saved are kept.")
    return "error", f"The process exited with status {returncode}: {last.strip()[:300]}"


# ----------------------------------------------------------------- the manager


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
        from .run_config import dump_yaml

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
        from .run_config import launch_problems

        problems = launch_problems(config, cuda_available())
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
