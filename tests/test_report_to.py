"""report_to tensorboard and trackio pass through TrainingArguments: after a tiny run the TensorBoard event files
lie in the run folder, and so do trackio's records (offline, its local SQLite store: the run sets TRACKIO_DIR)."""
import json
import sqlite3

import pytest

from tests.test_train import finished, tiny_config, wait_for
from lora_core.training.registry import RunManager

pytest.importorskip("tensorboard")
pytest.importorskip("trackio")


@pytest.fixture(scope="module")
def reported_run(workspace, embedded_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TRACKIO_DIR", raising=False)
        patch.setenv("HF_HUB_OFFLINE", "1")
        manager = RunManager(workspace)
        config = tiny_config(steps=4, **{"training.sft.report_to": ["tensorboard", "trackio"],
                                         "evaluation.after_training": False})
        config.sft.eval_steps = config.sft.save_steps = 2
        run_id = manager.start(config, name="reported")
        status = wait_for(manager, run_id, finished)
    assert status["state"] == "finished", "\n".join(manager.folder(run_id).log_tail(30))
    return manager.folder(run_id), manager.folder(run_id).path / "trackio"


def test_tensorboard_event_files_are_in_the_run_folder(reported_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, _ = reported_run
    events = sorted((folder.path / "runs").glob("*/events.out.tfevents.*"))
    assert events, sorted(p.name for p in folder.path.iterdir())
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    losses = [event.value for event in accumulator.Scalars("train/loss")]
    assert len(losses) == 4 and all(value > 0 for value in losses)
    assert [event.step for event in accumulator.Scalars("eval/loss")] == [2, 4]


def test_trackio_records_hold_the_runs_losses(reported_run):
    folder, trackio_dir = reported_run
    databases = list(trackio_dir.glob("*.db"))
    assert [db.stem for db in databases] == ["huggingface"]  # TrainingArguments' default project
    with sqlite3.connect(databases[0]) as db:
        rows = db.execute("SELECT step, metrics FROM metrics WHERE run_name = ?", (folder.run_id,)).fetchall()
    logged = [json.loads(metrics) for _, metrics in rows]
    assert sum(1 for m in logged if "train/loss" in m) == 4 and any("eval/loss" in m for m in logged)


def test_the_runs_tab_links_to_them(reported_run, workspace):
    from types import SimpleNamespace

    from ui.runs.views import reporter_links

    folder, _ = reported_run
    ctx = SimpleNamespace(workspace=workspace)
    html = reporter_links(ctx, folder, folder.load_config())
    assert "tensorboard --logdir" in html and f"runs/{folder.run_id}/runs" in html
    assert "trackio show --project huggingface" in html
