"""The run registry without training: ids, demo limits, launch commands, failure reasons, the §1 warnings."""
import json
import signal
import sys

import pytest

from lora_core.training.presets import preset
from lora_core.training.log_diagnosis import KNOWN_WARNINGS, classify_failure, explain_line
from lora_core.training.registry import RunError, RunManager, process_alive
from lora_core.training.run_folder import RunFolder

# The seed's §1 table and §1.1 block, as the warnings appear in a log.
SEED_WARNINGS = {
    "tokenizer is deprecated": "FutureWarning: tokenizer is deprecated and will be removed in version 5.0.0 for "
                               "`Trainer.__init__`. Use `processing_class` instead.",
    "old Linux kernel": "Detected kernel version 3.10.0, which is below the recommended minimum of 5.5.0; this can "
                        "cause the process to hang.",
    "model already on multiple devices": "The model is already on multiple devices. Skipping the move to device "
                                         "specified in `args`.",
    "tokenizer has new PAD/BOS/EOS tokens": "The tokenizer has new PAD/BOS/EOS tokens that differ from the model "
                                            "config and generation config. The model config and generation config "
                                            "were aligned accordingly, being updated with the tokenizer's values. "
                                            "Updated tokens: {'bos_token_id': None}.",
    "use_cache=True incompatible with gradient checkpointing": "`use_cache=True` is incompatible with gradient "
                                                               "checkpointing. Setting `use_cache=False`.",
}


@pytest.mark.parametrize("title, line", SEED_WARNINGS.items())
def test_each_seed_warning_is_recognised_and_explained(title, line):
    known = explain_line(line)
    assert known is not None and known.title == title and known.source == "seed §1"
    assert len(known.explanation) > 40


def test_ordinary_lines_are_not_flagged():
    assert explain_line("[train] step 3/20: loss 11.9") is None
    assert len({k.title for k in KNOWN_WARNINGS}) == len(KNOWN_WARNINGS)


@pytest.mark.parametrize("returncode, log, reason", [
    (-signal.SIGKILL, ["[train] step 4/20: loss 11.9"], "killed"),
    (None, ["[train] step 4/20"], "killed"),
    (1, ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"], "out of memory"),
    (1, ["RuntimeError: Torch not compiled with CUDA enabled"], "no CUDA"),
    (1, ["RUN FAILED (bad data): data.jsonl line 3 is not valid JSON."], "bad data"),
    (1, ["Traceback ...", "ZeroDivisionError: division by zero"], "error"),
])
def test_failure_reasons(returncode, log, reason):
    assert classify_failure(returncode, log)[0] == reason


@pytest.fixture
def manager(tmp_path):
    return RunManager(tmp_path)


def test_run_ids_cannot_escape_the_runs_folder(manager):
    for bad in ("../x", "a/b", "", "..", "/etc"):
        with pytest.raises(RunError):
            manager.folder(bad)
    with pytest.raises(RunError, match="no run"):
        manager.folder("20250101-000000-missing")


def test_created_runs_are_listed_with_their_names(manager):
    first = manager.create(preset("tiny-cpu").config(), name="alpha")
    second = manager.create(preset("llm-only").config(), name="alpha")
    assert first.run_id != second.run_id and first.run_id.endswith("-alpha")
    listed = manager.list_runs()
    assert {s.run_id for s in listed} == {first.run_id, second.run_id}
    assert all(s.state == "created" and s.name == "alpha" for s in listed)
    assert RunManager(manager.workspace).list_runs()[0].run_id in (first.run_id, second.run_id)  # after a restart


def test_demo_mode_forces_the_embedded_model_and_a_step_budget(tmp_path):
    demo = RunManager(tmp_path, demo=True, demo_max_steps=30)
    config = preset("189-samples").config()
    config.model, config.data.path = "/some/checkpoint", "/home/me/data.jsonl"
    folder = demo.create(config)
    stored = folder.load_config()
    assert stored.model == "embedded" and stored.data.path is None
    assert stored.sft.max_steps == 30 and not stored.training.use_4bit
    assert "accepts no dataset path" in demo.preflight(stored, tmp_path / "x.jsonl")[0]


def test_launch_commands_without_a_shell(manager):
    folder = manager.create(preset("tiny-cpu").config())
    single = manager.command(folder, None)
    assert single[:3] == [sys.executable, "-m", "lora_core.train"] and "--config" in single
    multi = manager.command(folder, None, gpus=2)
    assert multi[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert "--nproc_per_node=2" in multi and multi[multi.index("-m", 3):][:2] == ["-m", "lora_core.train"]


def test_a_stale_running_status_after_restart_becomes_killed(manager):
    folder = manager.create(preset("tiny-cpu").config(), name="ghost")
    folder.update_status(state="training", pid=999_999_999, step=5, max_steps=20)
    status = manager.refresh(folder.run_id)
    assert status["state"] == "failed" and status["reason"] == "killed"
    assert not process_alive(999_999_999)


def test_run_folder_reads_partial_files(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append_metric({"kind": "train", "step": 1, "loss": 2.0})
    with folder.metrics_path.open("a") as handle:
        handle.write('{"kind": "train", "st')  # being written right now
    assert folder.read_metrics() == [{"kind": "train", "step": 1, "loss": 2.0}]
    folder.update_status(state="training")
    assert json.loads(folder.status_path.read_text())["state"] == "training"
    assert folder.log_tail() == [] and folder.read_eval() is None and folder.read_predictions() == []
