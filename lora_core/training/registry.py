"""Run registry and launcher: each run is a folder (run_folder.py) and a process group, keyed by run id.

A run is started without a shell in a session of its own, so its process group id is the launcher's child
pid, recorded as `pid` (and `pgid`) in status.json; the trainer writes its own pid as `trainer_pid` (rank 0)
and `rank<N>_pid`. Stop asks rank 0 (a STOP file and SIGTERM) to save a checkpoint and end; rank 0 tells
the other ranks, so every rank stops on the same step. Kill sends SIGTERM, then SIGKILL, to the whole group
and says what really happened. Runs beyond the cap (`max_concurrent`: one per GPU, one on a CPU-only machine,
or LORA_MAX_CONCURRENT_RUNS) wait in the state `waiting` and start in order of creation. One evaluation
at a time per run (a lock file the evaluate process holds). Why a run failed is read from its train.log
(log_diagnosis.py). This module imports nothing heavy: the app imports it at start.
"""
from __future__ import annotations

import contextlib
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

from lora_core.training.callbacks import stop_sync_steps
from lora_core.training.log_diagnosis import classify_failure
from lora_core.training.run_folder import EVAL_LOCK_FD_ENV, RunFolder

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process queue lock
    fcntl = None

ROOT = Path(__file__).resolve().parents[2]  # the repository: run processes start there
RUNNING_STATES = ("queued", "starting", "loading", "training", "stopping", "evaluating")
WAITING = "waiting"  # created, waiting for a free slot under the cap; no process yet
FINAL_STATES = ("finished", "stopped", "failed")
MAX_CONCURRENT_ENV = "LORA_MAX_CONCURRENT_RUNS"
CPU_DDP_ENV = "LORA_ALLOW_CPU_DDP"  # tests: training.gpus > 1 on the CPU, as gloo ranks
KILL_GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL
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
    def waiting(self) -> bool:
        return self.state == WAITING

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


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group id) of a pid, from /proc/<pid>/stat; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def group_members(pgid: int | None) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, by a scan of /proc (os.killpg(pgid, 0) elsewhere)."""
    if not pgid:
        return []
    pgid = int(pgid)
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except OSError:
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat and stat[1] == pgid and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return sorted(members)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int | None) -> list[int]:
    """Every live descendant of pid (children, their children, ...), from /proc."""
    if not pid or not Path("/proc/self/stat").exists():
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [int(pid)]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, "").strip())
    except ValueError:
        return None
    return value if value > 0 else None


class RunManager:
    """Creates run folders, queues and starts their processes, stops and kills them, and reads their state.

    `max_concurrent`: how many GPU slots runs may take at once (a run takes training.gpus of them); default
    LORA_MAX_CONCURRENT_RUNS, else one per visible GPU, else 1 on a CPU-only machine. Runs beyond it wait.
    """

    def __init__(self, workspace: Path, demo: bool = False, demo_max_steps: int = DEMO_MAX_STEPS,
                 max_concurrent: int | None = None):
        self.workspace = Path(workspace).resolve()
        self.runs_dir = self.workspace / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.demo = demo
        self.demo_max_steps = demo_max_steps
        self._max_concurrent = max_concurrent
        self.processes: dict[str, subprocess.Popen] = {}
        self.eval_processes: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.queue_guard = threading.RLock()
        self._queue_depth = 0
        self.killing: set[str] = set()  # runs kill() is ending right now
        self.start_waiting()  # runs left waiting by an earlier app start in order

    @property
    def max_concurrent(self) -> int:
        if self._max_concurrent is not None:
            return max(1, int(self._max_concurrent))
        return env_int(MAX_CONCURRENT_ENV) or max(1, gpu_count())

    # -- folders

    def folder(self, run_id: str) -> RunFolder:
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            raise RunError(f"{run_id!r} is not a run id.")
        path = self.runs_dir / run_id
        if not (path / "config.yaml").is_file():
            raise RunError(f"There is no run {run_id!r} (it may have been deleted).")
        return RunFolder(path)

    def run_ids(self) -> list[str]:
        if not self.runs_dir.exists():
            return []
        return [path.name for path in self.runs_dir.iterdir() if path.is_dir() and RUN_ID_PATTERN.match(path.name)
                and (path / "config.yaml").is_file()]

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

    def run_environment(self) -> dict:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "LORA_RUN_LOG_ATTACHED": "1", "LORA_RUN_LAUNCHED": "1",
                "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
                    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}

    def launch(self, run_id: str, data_path: Path | None = None) -> RunFolder:
        """Start the run's process now, in a process group of its own (the cap is start_waiting's business)."""
        folder = self.folder(run_id)
        config = folder.load_config()
        problems = self.preflight(config, data_path)
        if problems:
            folder.update_status(state="failed", reason="no CUDA" if "CUDA" in problems[0] else "bad config",
                                 message=problems[0], finished_at=time.time())
            raise RunError(problems[0])
        gpus = max(1, int(config.training.gpus))
        folder.kill_path.unlink(missing_ok=True)
        folder.update_status(state="queued", queued_at=time.time(), message=None, nproc=gpus)
        try:
            with open(folder.log_path, "ab") as log:
                process = subprocess.Popen(self.command(folder, data_path, gpus), cwd=ROOT, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT, env=self.run_environment(),
                                           start_new_session=True)  # its own group: pid == group id
        except OSError as error:
            folder.update_status(state="failed", reason="error", message=f"The run could not start: {error}",
                                 finished_at=time.time())
            raise RunError(f"The run could not start: {error}") from None
        folder.update_status(pid=process.pid, pgid=process.pid, launcher_pid=os.getpid())
        with self.lock:
            self.processes[run_id] = process
        threading.Thread(target=self._watch, args=(process,), name=f"watch-{run_id}", daemon=True).start()
        return folder

    def _watch(self, process: subprocess.Popen) -> None:
        """When a run's process ends, start the runs waiting for its slot."""
        try:
            process.wait()
            self.start_waiting()
        except Exception:  # a watcher must never take the app down
            pass

    def start(self, config, name: str | None = None, data_path: Path | None = None) -> str:
        """Check, create and queue in one go (it starts at once when a slot is free); returns the run id.
        Refused before any folder is made."""
        checked = self.demo_limited(config) if self.demo else config
        problems = self.preflight(checked, data_path)
        if problems:
            raise RunError(problems[0])
        folder = self.create(config, name)
        folder.update_status(state=WAITING, waiting_since=time.time(), gpus=max(1, int(checked.training.gpus)),
                             launch_data=str(Path(data_path).resolve()) if data_path is not None else None)
        self.start_waiting()
        status = folder.read_status()
        if status.get("state") == "failed" and not status.get("pid"):
            raise RunError(status.get("message") or f"{folder.run_id} could not start.")
        return folder.run_id

    # -- the queue

    @contextlib.contextmanager
    def queue_lock(self):
        """One queue decision at a time: across this app's threads and across app processes (flock)."""
        with self.queue_guard:
            if fcntl is None or self._queue_depth:  # reentrant: a second flock of ours would wait for the first
                self._queue_depth += 1
                try:
                    yield
                finally:
                    self._queue_depth -= 1
                return
            handle = os.open(self.runs_dir / ".queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._queue_depth += 1
                yield
            finally:
                self._queue_depth = 0
                os.close(handle)

    def start_waiting(self) -> list[str]:
        """Start waiting runs, oldest first, while the running ones take fewer slots than the cap (a run that
        needs more slots than the cap starts when nothing else runs). Returns the ids started."""
        started = []
        with self.queue_lock():
            statuses = {}
            for run_id in self.run_ids():
                try:
                    statuses[run_id] = self._refresh(run_id)
                except (RunError, OSError):
                    continue
            waiting = sorted((s.get("created_at") or 0, run_id) for run_id, s in statuses.items()
                             if s.get("state") == WAITING)
            if not waiting:
                return started
            cap = self.max_concurrent
            used = sum(run_slots(s) for s in statuses.values() if s.get("state") in RUNNING_STATES)
            blocked = False
            for position, (_, run_id) in enumerate(waiting, start=1):
                status = statuses[run_id]
                need = run_slots(status)
                if not blocked and (used == 0 or used + need <= cap):
                    data = status.get("launch_data")
                    try:
                        self.launch(run_id, Path(data) if data else None)
                    except (RunError, OSError):
                        continue
                    used += need
                    started.append(run_id)
                    continue
                blocked = True  # in order: a later run never jumps ahead of an earlier one
                message = (f"Waiting for a free slot: position {position - len(started)} in the queue; at most "
                           f"{cap} GPU slot(s) run at once ({MAX_CONCURRENT_ENV}).")
                if status.get("message") != message:
                    self.folder(run_id).update_status(message=message)
        return started

    def cancel_waiting(self, run_id: str) -> str:
        with self.queue_lock():
            folder = self.folder(run_id)
            if folder.read_status().get("state") != WAITING:
                return f"{run_id} has left the queue already; press again to act on it."
            folder.update_status(state="stopped", finished_at=time.time(), eta_s=0,
                                 message="Taken out of the queue before it started; nothing was trained.")
        return f"{run_id} was waiting for a slot; it is taken out of the queue (nothing was trained)."

    # -- stopping and killing

    def stop(self, run_id: str) -> str:
        """Ask the run to save a checkpoint and end: rank 0 decides, and tells the other ranks."""
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        if status.get("state") == WAITING:
            return self.cancel_waiting(run_id)
        if status.get("state") not in RUNNING_STATES:
            return f"{run_id} is not running ({status.get('state', 'unknown')})."
        folder.request_stop()
        needle = str(folder.config_path)
        nproc = int(status.get("nproc") or 1)
        # rank 0's process: the trainer (with torchrun, never the agent, which would tear the workers down)
        target = status.get("trainer_pid") if process_alive(status.get("trainer_pid"), needle) else \
            status.get("pid") if nproc == 1 else None
        if target and process_alive(target, needle):
            try:
                os.kill(int(target), signal.SIGTERM)
            except OSError:
                pass
        if nproc > 1:
            return (f"Stopping {run_id}: rank 0 checks every {stop_sync_steps()} steps and tells the other "
                    f"{nproc - 1} rank(s), so they all save a checkpoint and stop on the same step.")
        return f"Stopping {run_id}: it saves a checkpoint at the end of the current step."

    def run_groups(self, folder: RunFolder, status: dict) -> dict[int, list[int]]:
        """The run's live process groups and their members: the launcher's group (`pgid`, the run's pid), the
        groups the ranks recorded (torchrun starts each worker in a session of its own) and those of any
        descendant of the run's pid. A group holds the run only if one member's command line names its
        config (a group id reused by other programs is left alone)."""
        needle = str(folder.config_path)
        pid = status.get("pid")
        groups = {int(status["pgid"])} if status.get("pgid") else set()
        if not groups and pid:  # run by hand, or by an older launcher: its pid leads a group, or not
            stat = proc_stat(int(pid))
            if stat and stat[1] == int(pid):
                groups.add(int(pid))
        groups |= {int(v) for k, v in status.items() if re.fullmatch(r"rank\d+_pgid", k) and v}
        below = descendants(pid)  # groups that a descendant leads (never a group the run merely sits in)
        groups |= {child for child in below if (proc_stat(child) or ("", 0))[1] == child}
        found = {}
        for group in sorted(groups):
            members = group_members(group)
            if members and any(needle in command_line(member) for member in members):
                found[group] = members
        if not found and pid and process_alive(pid, needle):  # a pid that leads no group: that process alone
            found[-int(pid)] = [int(pid)]
        return found

    def kill(self, run_id: str) -> str:
        """End the run's processes at once (SIGTERM, then SIGKILL, to each of its process groups); no
        checkpoint. The sentence says what happened; the run is marked killed only when none is left."""
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        state = status.get("state", "unknown")
        if state == WAITING:
            return self.cancel_waiting(run_id)
        if state not in RUNNING_STATES:
            return f"{run_id} is not running ({state}); nothing was killed."
        self.killing.add(run_id)  # its end is recorded here, not taken for a crash by refresh
        try:
            return self._kill(run_id, folder, status)
        finally:
            self.killing.discard(run_id)

    def _kill(self, run_id: str, folder: RunFolder, status: dict) -> str:
        groups = self.run_groups(folder, status)
        if not groups:
            return (f"{run_id}'s processes (group {status.get('pgid') or status.get('pid') or '?'}) were already "
                    f"gone; nothing was killed. Its state is {self.refresh(run_id).get('state', 'unknown')}.")
        count = sum(len(members) for members in groups.values())
        folder.kill_path.write_text(str(time.time()))  # the trainer's SIGTERM handler then ends it at once
        process = self.processes.get(run_id)

        def send(sig) -> str | None:
            for group in groups:
                try:
                    os.killpg(group, sig) if group > 0 else os.kill(-group, sig)
                except ProcessLookupError:
                    continue
                except PermissionError as error:
                    return f"could not signal process group {abs(group)}: {error.strerror}"
            return None

        def remaining(seconds: float) -> list[int]:
            deadline = time.monotonic() + seconds
            while True:
                if process is not None:
                    process.poll()  # reap our own child, so it is not left a zombie of the group
                left = [m for group in groups for m in (group_members(group) if group > 0 else
                                                        [-group] if process_alive(-group) else [])]
                if not left or time.monotonic() > deadline:
                    return left
                time.sleep(0.05)

        problem = send(signal.SIGTERM)
        if problem:
            return f"{run_id} is not killed: {problem}."
        left = remaining(KILL_GRACE_SECONDS)
        forced = len(left)
        if left:
            problem = send(signal.SIGKILL)
            if problem:
                return f"{run_id} is not killed: SIGTERM left {len(left)} process(es) and SIGKILL failed: {problem}."
            left = remaining(10.0)
        if left:
            return (f"{run_id} is not killed: {len(left)} of its processes are still alive after SIGKILL "
                    f"(pids {', '.join(map(str, left))}).")
        folder.kill_path.unlink(missing_ok=True)
        how = (f"SIGTERM ended {max(count - forced, 0)} of its {count} process(es), SIGKILL the other {forced}"
               if forced else f"SIGTERM ended its {count} process(es)")
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        returncode = process.poll() if process is not None else None
        with folder.status_lock():
            current = folder.read_status().get("state")
        if current not in RUNNING_STATES:  # it recorded its own end as the signal came
            return f"{run_id} had ended by itself ({current}) as it was killed; {how}."
        folder.update_status(state="failed", reason="killed", finished_at=time.time(), returncode=returncode,
                             message=f"Killed from the Runs tab: {how}. No checkpoint was written after the last "
                                     "save.")
        self.start_waiting()
        return f"Killed {run_id}: {how}; none is left."

    def delete(self, run_id: str) -> None:
        folder = self.folder(run_id)
        if self.refresh(run_id).get("state") in RUNNING_STATES:
            raise RunError(f"{run_id} is still running; stop it first.")
        with self.queue_lock():
            shutil.rmtree(folder.path)

    # -- reading state

    def refresh(self, run_id: str) -> dict:
        """status.json, corrected when its process is gone without writing a final state; a waiting run
        starts here when a slot has come free."""
        before = self.folder(run_id).read_status().get("state")
        status = self._refresh(run_id)
        if status.get("state") == WAITING or (before in RUNNING_STATES and status.get("state") not in RUNNING_STATES):
            self.start_waiting()
            status = self.folder(run_id).read_status()
        return status

    def _refresh(self, run_id: str) -> dict:
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
        if run_id in self.killing:
            return status  # kill() records how it ended
        reason, message = classify_failure(returncode, folder.log_tail(60))
        with folder.status_lock():
            if folder.read_status().get("state") not in RUNNING_STATES:
                return folder.read_status()
        return folder.update_status(state="failed", reason=reason, message=message, finished_at=time.time(),
                                    returncode=returncode)

    def summary(self, run_id: str, refresh: bool = True) -> RunSummary:
        folder = self.folder(run_id)
        status = self.refresh(run_id) if refresh else self._refresh(run_id)
        metrics = folder.read_metrics()
        losses = [m["loss"] for m in metrics if m.get("kind") == "train" and isinstance(m.get("loss"), (int, float))]
        evals = [m["eval_loss"] for m in metrics if isinstance(m.get("eval_loss"), (int, float))]
        return RunSummary(run_id, status.get("name") or run_id, status.get("state", "unknown"),
                          int(status.get("step") or 0), int(status.get("max_steps") or 0), status.get("eta_s"),
                          losses[-1] if losses else None, evals[-1] if evals else None, status.get("reason"),
                          status.get("message"), status.get("created_at") or folder.path.stat().st_mtime, status)

    def list_runs(self) -> list[RunSummary]:
        """Every run in the workspace, newest first (running, waiting and finished alike); waiting runs start
        here while below the cap."""
        self.start_waiting()
        summaries = []
        for run_id in self.run_ids():
            try:
                summaries.append(self.summary(run_id, refresh=False))
            except (RunError, OSError):
                continue
        return sorted(summaries, key=lambda s: (s.created_at, s.run_id), reverse=True)

    def running(self) -> list[str]:
        return [s.run_id for s in self.list_runs() if s.running]

    # -- evaluation on demand

    def evaluate(self, run_id: str, max_dim: int | None = None, max_samples: int | None = None) -> str:
        """Start `python -m lora_core.evaluate` on the run; refused while another evaluation of it runs (the
        run folder's lock, taken here and held by the evaluate process: across requests and app restarts)."""
        folder = self.folder(run_id)
        status = self.refresh(run_id)
        if status.get("state") in RUNNING_STATES or status.get("state") == WAITING:
            raise RunError(f"{run_id} is still training; evaluate it when it has finished or stopped.")
        if not folder.adapter_path.joinpath("adapter_config.json").exists():
            raise RunError(f"{run_id} has no adapter to evaluate (it ended before saving one).")
        command = [sys.executable, "-m", "lora_core.evaluate", "--run", str(folder.path), "--workspace",
                   str(self.workspace)]
        if max_dim:
            command += ["--max-dim", str(int(max_dim))]
        if max_samples:
            command += ["--max-samples", str(int(max_samples))]
        with self.lock:
            process = self.eval_processes.get(run_id)
            held = folder.try_evaluation_lock() if process is None or process.poll() is not None else None
            if held is None:
                raise RunError(f"{run_id} is already being evaluated; wait for that evaluation to finish "
                               "(one evaluation per run at a time).")
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "LORA_RUN_LOG_ATTACHED": "1",
                   "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT), EVAL_LOCK_FD_ENV: str(held)}
            try:
                with open(folder.log_path, "ab") as log:
                    self.eval_processes[run_id] = subprocess.Popen(
                        command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                        start_new_session=True, pass_fds=(held,))  # the child holds the lock until it ends
            finally:
                os.close(held)
        return f"Evaluating {run_id} on its validation samples" + (f" at max_dim {max_dim}." if max_dim else ".")

    def evaluation_running(self, run_id: str) -> bool:
        process = self.eval_processes.get(run_id)
        if process is not None and process.poll() is None:
            return True
        with self.lock:
            return self.folder(run_id).evaluation_locked()

    def shutdown(self) -> None:
        """Leave runs going (they are independent processes); only reap finished children."""
        for process in list(self.processes.values()) + list(self.eval_processes.values()):
            process.poll()


def run_slots(status: dict) -> int:
    """GPU slots a run takes (its training.gpus, recorded when it was queued)."""
    try:
        return max(1, int(status.get("gpus") or status.get("nproc") or 1))
    except (TypeError, ValueError):
        return 1


def gpu_count() -> int:
    if not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
