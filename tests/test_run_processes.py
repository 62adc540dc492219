"""Run processes: status updates from several processes, one evaluation per run, the run queue, honest kills,
`["all-linear"]`, and a two-rank (gloo, CPU) run that starts, stops on one step for both ranks, and is killed
with no process left."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lora_core.training.presets import preset
from lora_core.training.registry import RUNNING_STATES, WAITING, RunError, RunManager, gpu_count, group_members
from lora_core.training.run_folder import RunFolder
from tests.conftest import ROOT

FINAL = ("finished", "stopped", "failed")


def wait_until(predicate, timeout=60.0, what="the condition", step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def processes_naming(text: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `text`, by a scan of /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if text in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# ----------------------------------------------------------------- status.json from two processes

UPDATER = """
import sys, time
from pathlib import Path
from lora_core.training.run_folder import RunFolder
folder, name, count = RunFolder(sys.argv[1]), sys.argv[2], int(sys.argv[3])
while not (folder.path / "GO").exists():
    time.sleep(0.001)
for i in range(count):
    folder.update_status(**{f"{name}{i}": i})
"""


def test_two_processes_updating_status_lose_no_field(tmp_path):
    count = 400
    writers = [subprocess.Popen([sys.executable, "-c", UPDATER, str(tmp_path), name, str(count)], cwd=ROOT)
               for name in ("launcher", "trainer")]
    time.sleep(1.0)  # both started and waiting
    (tmp_path / "GO").write_text("")
    for writer in writers:
        assert writer.wait(120) == 0
    status = RunFolder(tmp_path).read_status()
    missing = [f"{name}{i}" for name in ("launcher", "trainer") for i in range(count) if f"{name}{i}" not in status]
    assert not missing, f"{len(missing)} field(s) lost, e.g. {missing[:5]}"


# ----------------------------------------------------------------- one evaluation at a time

HOLDER = """
import sys, time
from lora_core.training.run_folder import RunFolder
assert RunFolder(sys.argv[1]).try_evaluation_lock() is not None
print("held", flush=True)
time.sleep(120)
"""


def finished_run_with_adapter(manager, name="done"):
    folder = manager.create(preset("tiny-cpu").config(), name=name)
    folder.update_status(state="finished")
    folder.adapter_path.mkdir()
    (folder.adapter_path / "adapter_config.json").write_text("{}")
    return folder


def test_one_evaluation_per_run_across_requests_and_restarts(tmp_path):
    manager = RunManager(tmp_path)
    folder = finished_run_with_adapter(manager)
    run_id = folder.run_id

    # an evaluation already running in another process (one started before an app restart)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder.path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for app in (manager, RunManager(tmp_path)):  # this app, and one started afresh
            with pytest.raises(RunError, match="already being evaluated"):
                app.evaluate(run_id)
            assert app.evaluation_running(run_id)
        cli = subprocess.run([sys.executable, "-m", "lora_core.evaluate", "--run", str(folder.path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 3 and "already being evaluated" in cli.stderr
        assert folder.read_eval() is None  # the refused evaluation wrote nothing
    finally:
        holder.kill()
        holder.wait(10)
    assert not manager.evaluation_running(run_id)

    # two clicks at once: one evaluation starts, the other gets a sentence
    outcomes = []

    def click():
        try:
            outcomes.append(manager.evaluate(run_id))
        except RunError as error:
            outcomes.append(f"refused: {error}")

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(30)
    try:
        assert len([o for o in outcomes if o.startswith("Evaluating")]) == 1, outcomes
        assert len([o for o in outcomes if "already being evaluated" in o]) == 1, outcomes
        with pytest.raises(RunError, match="already being evaluated"):
            RunManager(tmp_path).evaluate(run_id)  # the evaluate process holds the lock, not the app
    finally:
        process = manager.eval_processes[run_id]
        process.kill()
        process.wait(10)


# ----------------------------------------------------------------- the run queue

FAKE_RUN = """
import os, signal, subprocess, sys, time
from pathlib import Path
from lora_core.training.run_folder import RunFolder
folder = RunFolder(Path(sys.argv[1]).parent)
folder.update_status(state="training", trainer_pid=os.getpid(), fake_started=time.time())
if os.environ.get("FAKE_RUN_MODE") == "stubborn":  # a child in the run's group that ignores SIGTERM
    subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                      "open(__import__('sys').argv[1] + '.child', 'w').close(); time.sleep(120)", sys.argv[1]])
time.sleep(float(os.environ.get("FAKE_RUN_SECONDS", "1.5")))
folder.update_status(state="finished", fake_finished=time.time())
"""


class FakeRunManager(RunManager):
    """The real manager with a short script for a trainer (it writes status.json as the trainer does)."""

    def command(self, folder, data_path, gpus=1):
        return [sys.executable, "-c", FAKE_RUN, str(folder.config_path)]


def test_default_cap_is_one_per_gpu_and_configurable(tmp_path, monkeypatch):
    monkeypatch.delenv("LORA_MAX_CONCURRENT_RUNS", raising=False)
    assert RunManager(tmp_path).max_concurrent == max(1, gpu_count())
    monkeypatch.setenv("LORA_MAX_CONCURRENT_RUNS", "3")
    assert RunManager(tmp_path).max_concurrent == 3
    assert RunManager(tmp_path, max_concurrent=2).max_concurrent == 2


def test_runs_beyond_the_cap_wait_and_start_in_order(tmp_path):
    manager = FakeRunManager(tmp_path, max_concurrent=1)
    config = preset("tiny-cpu").config()
    first = manager.start(config, name="first")
    second = manager.start(config, name="second")
    assert manager.refresh(first)["state"] in RUNNING_STATES
    waiting = manager.folder(second).read_status()
    assert waiting["state"] == WAITING and "position 1" in waiting["message"]
    assert {s.run_id: s.state for s in manager.list_runs()}[second] == WAITING
    # nobody polls: the manager starts the waiting run itself when the first one ends
    started = wait_until(lambda: manager.folder(second).read_status().get("fake_started"), 60, "the second start")
    assert started >= manager.folder(first).read_status()["fake_finished"]
    wait_until(lambda: manager.refresh(second).get("state") == "finished", 60, "the second run's end")


def test_waiting_runs_start_in_order_after_an_app_restart(tmp_path):
    before = RunManager(tmp_path)  # an earlier app: it left two runs waiting
    older = before.create(preset("tiny-cpu").config(), name="older")
    time.sleep(0.05)
    newer = before.create(preset("tiny-cpu").config(), name="newer")
    for folder in (newer, older):
        folder.update_status(state=WAITING, gpus=1)
    restarted = FakeRunManager(tmp_path, max_concurrent=1)  # on start-up it starts the oldest one only
    assert restarted.folder(older.run_id).read_status()["state"] in RUNNING_STATES
    assert restarted.folder(newer.run_id).read_status()["state"] == WAITING
    started = wait_until(lambda: newer.read_status().get("fake_started"), 60, "the newer run's start")
    assert started >= older.read_status()["fake_finished"]
    wait_until(lambda: restarted.refresh(newer.run_id).get("state") == "finished", 60, "the newer run's end")


def test_a_waiting_run_is_taken_out_of_the_queue_by_stop(tmp_path):
    manager = FakeRunManager(tmp_path, max_concurrent=1)
    first = manager.start(preset("tiny-cpu").config(), name="first")
    second = manager.start(preset("tiny-cpu").config(), name="second")
    assert "taken out of the queue" in manager.stop(second)
    assert manager.refresh(second)["state"] == "stopped"
    wait_until(lambda: manager.refresh(first).get("state") == "finished", 60, "the first run's end")
    time.sleep(0.5)
    assert "fake_started" not in manager.folder(second).read_status()


# ----------------------------------------------------------------- kill says what happened


def test_kill_reports_what_really_happened(tmp_path, monkeypatch):
    manager = FakeRunManager(tmp_path)

    # a run whose group holds a child that ignores SIGTERM: SIGKILL ends it, and none is left
    monkeypatch.setenv("FAKE_RUN_MODE", "stubborn")
    monkeypatch.setenv("FAKE_RUN_SECONDS", "60")
    run_id = manager.start(preset("tiny-cpu").config(), name="stubborn")
    run = manager.folder(run_id)
    wait_until(lambda: Path(str(run.config_path) + ".child").exists(), 60, "the stubborn child")
    pgid = run.read_status()["pgid"]
    assert pgid == run.read_status()["pid"] and len(group_members(pgid)) == 2
    message = manager.kill(run_id)
    assert message.startswith(f"Killed {run_id}") and "SIGKILL" in message and "none is left" in message
    assert group_members(pgid) == [] and processes_naming(str(run.config_path)) == []
    status = manager.refresh(run_id)
    assert status["state"] == "failed" and status["reason"] == "killed"
    assert status["message"].startswith("Killed from the Runs tab")

    # the recorded group is gone although status still says the run is starting
    folder = manager.create(preset("tiny-cpu").config(), name="ghost")
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder.update_status(state="queued", queued_at=time.time(), pid=dead.pid, pgid=dead.pid)
    message = manager.kill(folder.run_id)
    assert "already gone" in message and "nothing was killed" in message and not message.startswith("Killed")
    assert folder.read_status().get("reason") != "killed"

    assert "not running" in manager.kill(manager.create(preset("tiny-cpu").config(), name="idle").run_id)


# ----------------------------------------------------------------- all-linear written as a list


def test_all_linear_as_a_list_is_what_peft_expands(embedded_path):
    from lora_core.analysis import coverage
    from lora_core.analysis.coverage import attached_modules, coverage_for_model
    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.trainer import attach_lora

    as_string = coverage_for_model(embedded_path, "all-linear")
    as_list = coverage_for_model(embedded_path, ["all-linear"])
    assert as_list.ok, as_list.errors
    assert as_list.groups == as_string.groups and as_list.trainable == as_string.trainable > 0

    config = preset("tiny-cpu").config()
    config.lora.target_modules = ["all-linear"]  # as the form writes it, one entry per line
    model, entries = attach_lora(load_model(embedded_path), config)
    attached = attached_modules(model)
    assert attached == sorted(entries[0].modules) == sorted(as_list.entries[0].modules)
    assert "lm_head" not in attached and any(".visual." in name for name in attached)

    mixed = coverage_for_model(embedded_path, ["all-linear", "q_proj"])
    assert not mixed.ok and "alone" in mixed.errors[0]
    assert coverage.peft_targets(["all-linear"]) == "all-linear" and coverage.peft_targets(["q_proj"]) == ["q_proj"]


def test_lora_dtype_bf16_keeps_only_the_adapter_in_bf16_and_only_on_bf16_runs(embedded_path):
    import torch

    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.trainer import attach_lora, lora_dtype_line

    config = preset("tiny-cpu").config()
    assert config.training.lora_dtype == "fp32"  # the default: full-precision adapter weights and updates
    model, _ = attach_lora(load_model(embedded_path), config, bf16=True)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert lora_dtype_line(config, True, model).startswith("LoRA weights: fp32, computed in bf16 under autocast")

    config.training.lora_dtype = "bf16"
    model, _ = attach_lora(load_model(embedded_path), config, bf16=True)
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.float32}  # the base as loaded
    assert "each optimizer update is rounded to bf16" in lora_dtype_line(config, True, model)
    inputs = torch.randint(0, 1000, (1, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as a bf16 run computes (RunTrainer.bf16_lora)
        model(input_ids=inputs, labels=inputs).loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.bfloat16 for g in grads) and any(g.abs().sum() > 0 for g in grads)

    model, _ = attach_lora(load_model(embedded_path), config, bf16=False)  # an fp32 run: told, not applied
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert "applies to bf16 runs only" in lora_dtype_line(config, False, model)


# ----------------------------------------------------------------- two gloo ranks on the CPU


@pytest.fixture
def cpu_ddp_manager(tmp_path, workspace, embedded_path, monkeypatch):
    """A workspace of its own (sharing the embedded model and demo data), with training.gpus 2 allowed on the
    CPU (LORA_ALLOW_CPU_DDP=1: torchrun, two gloo ranks)."""
    from demo import ensure_demo_data

    ensure_demo_data(workspace)
    own = tmp_path / "ddp-workspace"
    own.mkdir()
    for name in ("models", "demo"):
        (own / name).symlink_to(workspace / name, target_is_directory=True)
    monkeypatch.setenv("LORA_ALLOW_CPU_DDP", "1")
    monkeypatch.delenv("LORA_STOP_SYNC_STEPS", raising=False)
    manager = RunManager(own, max_concurrent=1)
    yield manager
    for run_id, process in manager.processes.items():
        if process.poll() is None:
            manager.kill(run_id)


def two_rank_config():
    config = preset("tiny-cpu").config()
    config.sft.max_steps = 400
    config.sft.save_steps = config.sft.eval_steps = 400
    config.training.gpus = 2
    return config


def wait_status(manager, run_id, predicate, timeout=300):
    def check():
        status = manager.refresh(run_id)
        return status if predicate(status) else None

    try:
        return wait_until(check, timeout, f"{run_id} to get there", step=0.25)
    except AssertionError:
        raise AssertionError(f"{manager.refresh(run_id)}\n" + "\n".join(manager.folder(run_id).log_tail(40)))


def test_two_cpu_ranks_stop_on_the_same_step_and_kill_leaves_no_process(cpu_ddp_manager):
    manager = cpu_ddp_manager
    command = manager.command(manager.create(two_rank_config(), name="command"), None, 2)
    assert "--nproc_per_node=2" in command and command[1:3] == ["-m", "torch.distributed.run"]

    run_id = manager.start(two_rank_config(), name="two-ranks-stop")
    status = wait_status(manager, run_id, lambda s: s.get("state") == "training" and (s.get("step") or 0) >= 2
                         or s.get("state") in FINAL)
    assert status["state"] == "training", status
    assert status["pid"] == status["pgid"] != status["trainer_pid"]  # the launcher's group kept, rank 0 beside it
    assert "same step" in manager.stop(run_id)
    status = wait_status(manager, run_id, lambda s: s.get("state") in FINAL)
    folder = manager.folder(run_id)
    assert status["state"] == "stopped", status
    step = status["step"]
    assert status["rank0_stopped_at_step"] == status["rank1_stopped_at_step"] == step and step % 10 == 0
    log = "\n".join(folder.log_tail(400))
    assert set(re.findall(r"rank (\d): stopping at step (\d+)", log)) == {("0", str(step)), ("1", str(step))}
    assert (folder.path / f"checkpoint-{step}").is_dir() and (folder.adapter_path / "adapter_config.json").exists()
    wait_until(lambda: not processes_naming(str(folder.config_path)), 30, "the stopped run's processes to end")

    run_id = manager.start(two_rank_config(), name="two-ranks-kill")
    folder = manager.folder(run_id)
    status = wait_status(manager, run_id, lambda s: s.get("state") == "training" and s.get("rank1_pid")
                         or s.get("state") in FINAL)
    assert status["state"] == "training", status
    pids = [status["pid"], status["trainer_pid"], status["rank1_pid"]]
    assert len(processes_naming(str(folder.config_path))) >= 3  # torchrun and its two workers
    message = manager.kill(run_id)
    assert message.startswith(f"Killed {run_id}") and "none is left" in message, message
    assert all(gone(pid) for pid in pids), [(pid, gone(pid)) for pid in pids]
    assert processes_naming(str(folder.config_path)) == []
    assert all(group_members(status[key]) == [] for key in ("pgid", "rank0_pgid", "rank1_pgid"))
    status = manager.refresh(run_id)
    assert status["state"] == "failed" and status["reason"] == "killed"
