"""Regenerate demo/runs/: three short LoRA runs of the embedded tiny model on the demo trajectories, trained and
evaluated through the app's own launcher, then stored with relative paths only (no pids, no server paths, no
checkpoint optimizer states). A public demo (--demo, a Space) copies them into its workspace to list, replay,
compare and try them.

    python scripts/make_demo_runs.py [--out demo/runs]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (stored id, name, config changes): the same data and steps, learning rate and rank apart
RUNS = [
    ("demo-1-lr5e-3-r8", "lr 5e-3, r 8", {"training.sft.learning_rate": 5e-3}),
    ("demo-2-lr1e-3-r8", "lr 1e-3, r 8", {"training.sft.learning_rate": 1e-3}),
    ("demo-3-lr5e-3-r4", "lr 5e-3, r 4", {"training.sft.learning_rate": 5e-3, "training.lora.r": 4,
                                          "training.lora.alpha": 8}),
]
DROPPED_STATUS = re.compile(r"^(pid|pgid|launcher_pid|trainer_pid|rank\d+_(pid|pgid)|model|data|launch_data|"
                            r"returncode|nproc|gpus|waiting_since|queued_at|peak_gpu_.*)$")
KEPT_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
LOG_LINES = 120


def config_for(changes: dict):
    from lora_core.training.presets import preset

    config = preset("tiny-cpu").config()
    config.sft.max_steps, config.sft.eval_steps, config.sft.save_steps = 30, 5, 10
    config.sft.save_total_limit = 1
    config.evaluation.max_samples, config.evaluation.max_new_tokens = 4, 32
    for path, value in changes.items():
        config.set(path, value)
    return config


def relative_text(text: str, workspace: Path) -> str:
    """Server paths out: the temporary workspace becomes `workspace`, the repository `.`."""
    text = text.replace(str(workspace.resolve()), "workspace").replace(str(workspace), "workspace")
    text = text.replace(str(ROOT), ".")
    return re.sub(r"/\S*?/site-packages/", "site-packages/", text)


def scrubbed(value, workspace: Path):
    if isinstance(value, str):
        return relative_text(value, workspace)
    if isinstance(value, list):
        return [scrubbed(v, workspace) for v in value]
    if isinstance(value, dict):
        return {k: scrubbed(v, workspace) for k, v in value.items()}
    return value


def copy_adapter(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for name in KEPT_ADAPTER_FILES:
        shutil.copy2(source / name, target / name)
    config = json.loads((target / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "embedded"
    (target / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")


def store(folder: Path, workspace: Path, out: Path, stored_id: str) -> None:
    target = out / stored_id
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copy2(folder / "config.yaml", target / "config.yaml")
    shutil.copy2(folder / "metrics.jsonl", target / "metrics.jsonl")
    status = json.loads((folder / "status.json").read_text())
    status = {k: v for k, v in status.items() if not DROPPED_STATUS.match(k)}
    status["stored_demo_run"] = True
    copy_adapter(folder / "adapter", target / "adapter")
    for checkpoint in folder.glob("checkpoint-*"):
        copy_adapter(checkpoint, target / checkpoint.name)
    (target / "status.json").write_text(json.dumps(scrubbed(status, workspace), indent=1, ensure_ascii=False) + "\n")
    if (folder / "eval.json").exists():
        evaluation = json.loads((folder / "eval.json").read_text())
        evaluation.pop("pid", None)
        (target / "eval.json").write_text(json.dumps(scrubbed(evaluation, workspace), indent=1) + "\n")
    if (folder / "predictions.jsonl").exists():
        rows = []
        for line in (folder / "predictions.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row.get("image"):
                row["image"] = str(Path(row["image"]).resolve().relative_to(workspace.resolve()))
            rows.append(json.dumps(scrubbed(row, workspace), ensure_ascii=False))
        (target / "predictions.jsonl").write_text("\n".join(rows) + "\n")
    log = (folder / "train.log").read_text(errors="replace").splitlines()[-LOG_LINES:]
    (target / "train.log").write_text(relative_text("\n".join(log), workspace) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo" / "runs")
    args = parser.parse_args(argv)
    from lora_core.training.registry import FINAL_STATES, RunManager

    workspace = Path(tempfile.mkdtemp(prefix="demo-runs-")).resolve()
    manager = RunManager(workspace, max_concurrent=1)
    started = [(stored_id, manager.start(config_for(changes), name=name)) for stored_id, name, changes in RUNS]
    for stored_id, run_id in started:
        deadline = time.monotonic() + 900
        while manager.refresh(run_id).get("state") not in FINAL_STATES:
            if time.monotonic() > deadline:
                raise SystemExit(f"{run_id} did not finish within 15 minutes")
            time.sleep(1)
        status = manager.refresh(run_id)
        if status.get("state") != "finished":
            print("\n".join(manager.folder(run_id).log_tail(30)), file=sys.stderr)
            raise SystemExit(f"{run_id} ended {status.get('state')}: {status.get('message')}")
        store(workspace / "runs" / run_id, workspace, args.out, stored_id)
        print(f"stored {stored_id} ({run_id})", flush=True)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(started)} runs in {args.out}: {size / 1024:.0f} KiB", flush=True)
    shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
