"""Real tiny LoRA runs on the CPU, through the launcher's subprocess: progress, loss, stop, crash, kill."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lora_core.training.config import dump_yaml
from lora_core.training.presets import preset
from lora_core.training.log_diagnosis import recognised_warnings
from lora_core.training.registry import RUNNING_STATES, RunError, RunManager
from tests.conftest import ROOT

TIMEOUT = 240


def tiny_config(steps=16, **changes):
    config = preset("tiny-cpu").config()
    config.sft.max_steps = steps
    config.sft.eval_steps = config.sft.save_steps = 8
    config.evaluation.max_new_tokens = 24
    config.evaluation.max_samples = 2
    for path, value in changes.items():
        config.set(path, value)
    return config


def wait_for(manager, run_id, predicate, timeout=TIMEOUT, seen=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = manager.refresh(run_id)
        if seen is not None:
            seen.append((status.get("state"), status.get("step"), status.get("max_steps")))
        if predicate(status):
            return status
        time.sleep(0.25)
    log = "\n".join(manager.folder(run_id).log_tail(40))
    raise AssertionError(f"run {run_id} did not get there in {timeout} s; status {status}\n{log}")


def finished(status):
    return status.get("state") not in RUNNING_STATES + ("created",)


@pytest.fixture(scope="module")
def manager(workspace, embedded_path):
    return RunManager(workspace)


@pytest.fixture(scope="module")
def finished_run(manager):
    seen = []
    # gradient checkpointing on: transformers then prints one of the seed's §1 warnings
    run_id = manager.start(tiny_config(**{"training.gradient_checkpointing": True}), name="finished")
    status = wait_for(manager, run_id, finished, seen=seen)
    return run_id, status, seen


def test_run_finishes_with_progress_visible_on_the_way(finished_run, manager):
    run_id, status, seen = finished_run
    assert status["state"] == "finished", status
    steps = [step for state, step, _ in seen if state == "training" and step]
    assert any(0 < step < 16 for step in steps), seen  # the UI saw it mid-way
    assert status["step"] == status["max_steps"] == 16
    summary = manager.summary(run_id)
    assert summary.name == "finished" and summary.progress == "16/16"


def test_loss_falls(finished_run, manager):
    metrics = manager.folder(finished_run[0]).read_metrics()
    losses = [m["loss"] for m in metrics if m["kind"] == "train"]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.05, losses
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert [m["step"] for m in evals] == [8, 16] and all(m["eval_loss"] > 0 for m in evals)


def test_run_folder_holds_every_file(finished_run, manager):
    folder = manager.folder(finished_run[0])
    status = finished_run[1]
    for name in ("config.yaml", "status.json", "metrics.jsonl", "train.log", "predictions.jsonl", "eval.json",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        assert (folder.path / name).exists(), name
    assert status["best_checkpoint"] in ("checkpoint-8", "checkpoint-16")
    assert (folder.path / status["best_checkpoint"]).is_dir()
    evaluation = json.loads(folder.eval_path.read_text())
    metrics = evaluation["metrics"]
    assert evaluation["state"] == "done" and metrics["samples"] == 2
    for key in ("format_valid_rate", "action_type_accuracy", "click_hit_rate", "mean_coordinate_error_px",
                "eval_loss"):
        assert key in metrics
    assert metrics["eval_loss"] == pytest.approx(folder.last_eval_loss())
    rows = folder.read_predictions()
    assert len(rows) == 2 and all({"id", "output", "valid", "truth_action", "image"} <= set(row) for row in rows)
    assert evaluation["image_settings"] == evaluation["trained_image_settings"] == status["image_settings"]


def test_adapter_reloads_with_peft(finished_run, manager, embedded_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from lora_core.qwen.checkpoint import load_model

    adapter = manager.folder(finished_run[0]).adapter_path
    model = PeftModel.from_pretrained(load_model(embedded_path), str(adapter))
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    state = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(saved) == len(state) > 0
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert any(torch.count_nonzero(v) for v in lora_b)  # trained: B starts at zero
    loaded_b = [v for k, v in state.items() if "lora_B" in k]
    assert sorted(float(v.abs().sum()) for v in loaded_b) == pytest.approx(sorted(float(v.abs().sum()) for v in lora_b))


CACHE_WARNING = "use_cache=True incompatible with gradient checkpointing"


def test_seed_warnings_are_recognised_in_each_transformers_wording():
    lines = ["`use_cache=True` is incompatible with gradient checkpointing. Setting `use_cache=False`.",  # seed §1
             "Caching is incompatible with gradient checkpointing in Qwen3VLTextDecoderLayer. Setting "
             "`use_cache=False`.",  # transformers 5.24
             "step 3: loss 1.2"]
    for line in lines[:2]:
        found = recognised_warnings([line])
        assert [k.title for k in found if k.source == "seed §1"] == [CACHE_WARNING], line
        assert all(k.explanation for k in found)
    assert recognised_warnings(lines[2:]) == []


def test_our_runs_build_no_kv_cache_so_the_seed_cache_warning_is_gone(finished_run, manager):
    found = recognised_warnings(manager.folder(finished_run[0]).log_tail(400))
    assert CACHE_WARNING not in {k.title for k in found}
    assert all(k.explanation for k in found)


def test_stop_is_graceful_and_keeps_the_last_checkpoint(manager):
    run_id = manager.start(tiny_config(steps=400, **{"training.sft.save_steps": 400, "training.sft.eval_steps": 400}),
                           name="stopped")
    wait_for(manager, run_id, lambda s: s.get("state") == "training" and (s.get("step") or 0) >= 3)
    assert "Stopping" in manager.stop(run_id)
    status = wait_for(manager, run_id, finished, timeout=120)
    folder = manager.folder(run_id)
    assert status["state"] == "stopped", status
    step = status["step"]
    assert 3 <= step < 400
    assert (folder.path / f"checkpoint-{step}" / "adapter_model.safetensors").exists()
    assert status["last_checkpoint"] == f"checkpoint-{step}"
    assert (folder.adapter_path / "adapter_config.json").exists()
    assert "last checkpoint" in status["message"]


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_data_crash_is_explained(manager, tmp_path):
    data = write_jsonl(tmp_path / "broken.jsonl", ['{"messages": [{"role": "user", "content": "hi"}]}', "{not json"])
    run_id = manager.start(tiny_config(), name="bad-data", data_path=data)
    status = wait_for(manager, run_id, finished, timeout=120)
    assert status["state"] == "failed" and status["reason"] == "bad data"
    assert "broken.jsonl, line 2: not valid JSON" in status["message"]
    assert any("RUN FAILED (bad data)" in line for line in manager.folder(run_id).log_tail(10))


def test_missing_dataset_is_refused_before_launch(manager, tmp_path):
    before = set(os.listdir(manager.runs_dir))
    with pytest.raises(RunError, match="does not exist"):
        manager.start(tiny_config(), data_path=tmp_path / "nowhere.jsonl")
    assert set(os.listdir(manager.runs_dir)) == before


def test_4bit_is_refused_on_cpu_before_launch(manager):
    before = set(os.listdir(manager.runs_dir))
    with pytest.raises(RunError, match="use_4bit needs a CUDA GPU"):
        manager.start(tiny_config(**{"training.use_4bit": True}))
    assert set(os.listdir(manager.runs_dir)) == before  # no run folder, no process


def test_killed_run_is_found_after_an_app_restart(manager, workspace):
    run_id = manager.start(tiny_config(steps=400, **{"training.sft.save_steps": 400,
                                                     "training.sft.eval_steps": 400}), name="killed")
    wait_for(manager, run_id, lambda s: s.get("state") == "training")
    restarted = RunManager(workspace)  # a new app process: no Popen handles, only the folders
    assert run_id in restarted.running()
    os.killpg(manager.refresh(run_id)["pid"], signal.SIGKILL)  # killed from outside (OOM killer, kill -9)
    manager.processes[run_id].wait(30)
    status = wait_for(restarted, run_id, finished, timeout=30)
    assert status["state"] == "failed" and status["reason"] == "killed"
    assert "killed" in status["message"].lower()
    assert manager.refresh(run_id)["reason"] == "killed"


def test_kill_button_ends_a_run_at_once(manager):
    run_id = manager.start(tiny_config(steps=400, **{"training.sft.save_steps": 400,
                                                     "training.sft.eval_steps": 400}), name="kill-me")
    wait_for(manager, run_id, lambda s: s.get("state") in ("loading", "training"))
    manager.kill(run_id)
    status = manager.refresh(run_id)
    assert status["state"] == "failed" and status["reason"] == "killed"


def test_terminal_run_writes_its_own_log_and_refuses_an_unmatched_target(tmp_path, workspace):
    """`python -m lora_core.train` by hand: same folder files; the seed's vision entries stop it before training."""
    from tests.test_run_config import SEED_7_2

    folder = tmp_path / "runs" / "by-hand"
    folder.mkdir(parents=True)
    config = tiny_config()
    from lora_core.training.config import load_yaml_text

    config.lora.target_modules = load_yaml_text(SEED_7_2).config.lora.target_modules
    (folder / "config.yaml").write_text(dump_yaml(config))
    out = subprocess.run([sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"),
                          "--workspace", str(workspace)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"] == "bad config"
    assert "visual.attn.qkv" in status["message"] and "attn.qkv" in status["message"]
    assert "RUN FAILED (bad config)" in (folder / "train.log").read_text()
    assert "RUN FAILED (bad config)" in out.stderr


def test_evaluation_on_demand_at_another_resolution_is_flagged(finished_run, manager):
    from lora_core.analysis.curves import resolution_flag

    run_id = finished_run[0]
    message = manager.evaluate(run_id, max_dim=768, max_samples=1)
    assert "max_dim 768" in message
    deadline = time.monotonic() + 180
    while manager.evaluation_running(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    evaluation = manager.folder(run_id).read_eval()
    assert evaluation["state"] == "done", manager.folder(run_id).log_tail(20)
    assert evaluation["image_settings"]["max_dim"] == 768 and evaluation["trained_image_settings"]["max_dim"] == 520
    flag = resolution_flag(manager.summary(run_id).status["image_settings"], evaluation["image_settings"])
    assert flag and "max_dim 520 → 768" in flag and "§4.4" in flag


def test_terminal_run_with_4bit_on_cpu_fails_as_no_cuda(tmp_path, workspace):
    """Bypassing the launcher's check, the trainer still refuses 4-bit without CUDA before loading the model."""
    folder = tmp_path / "runs" / "four-bit"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_yaml(tiny_config(**{"training.use_4bit": True})))
    out = subprocess.run([sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"),
                          "--workspace", str(workspace)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    status = json.loads((folder / "status.json").read_text())
    assert out.returncode == 1 and status["reason"] == "no CUDA" and "use_4bit needs a CUDA GPU" in status["message"]


def test_exceptions_map_to_reasons():
    import torch

    from lora_core.training.config import ConfigError
    from lora_core.data.samples import SampleFormatError
    from lora_core.training.failures import RunFailure
    from lora_core.training.train import classify_exception

    assert classify_exception(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))[0] == \
        "out of memory"
    assert classify_exception(MemoryError())[0] == "out of memory"
    assert classify_exception(SampleFormatError("x.jsonl line 2: role must be ..."))[0] == "bad data"
    assert classify_exception(ConfigError("training.lora.r must be ..."))[0] == "bad config"
    assert classify_exception(RunFailure("no CUDA", "needs CUDA"))[0] == "no CUDA"
    assert classify_exception(RuntimeError("Torch not compiled with CUDA enabled"))[0] == "no CUDA"
    assert classify_exception(ZeroDivisionError("division by zero")) == ("error", "ZeroDivisionError: division by zero")
    from torch.utils.checkpoint import CheckpointError

    reason, message = classify_exception(CheckpointError("torch.utils.checkpoint: Recomputed values ..."))
    assert reason == "error" and "training.compile to false" in message


def test_compile_auto_falls_back_to_eager_blocks_when_a_recompute_fails(monkeypatch, capsys):
    """The CheckpointError is raised by hand: the real one needs compiled blocks on a CUDA GPU (it was seen on
    an H200 with a micro-batch split into packs of different sample counts). Under compile: auto the pack is
    redone eager with the step's gradients cleared; under compile: true the error propagates."""
    import torch
    from torch.utils.checkpoint import CheckpointError
    from transformers import Trainer
    from transformers.trainer_callback import TrainerState

    from lora_core.training.trainer import make_trainer_class

    calls = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        calls.append(inputs)
        if len(calls) == 1:
            raise CheckpointError("torch.utils.checkpoint: Recomputed values for the following tensors ...")
        return torch.tensor(1.5)

    monkeypatch.setattr(Trainer, "training_step", training_step)
    trainer_class = make_trainer_class()
    trainer = trainer_class.__new__(trainer_class)
    trainer.state = TrainerState()
    trainer.state.global_step = 6
    model = torch.nn.Linear(2, 2)
    model.weight.grad = torch.ones(2, 2)
    trainer.compiled, trainer.eager_fallback = True, True
    try:
        assert float(trainer.pack_step(model, {}, None)) == 1.5
    finally:
        torch.compiler.set_stance("default")
    assert len(calls) == 2 and model.weight.grad is None
    assert trainer.compiled is False and trainer.fell_back_at == 7
    assert "run eager from here" in capsys.readouterr().out

    calls.clear()
    trainer.compiled, trainer.eager_fallback = True, False
    with pytest.raises(CheckpointError):
        trainer.pack_step(model, {}, None)
