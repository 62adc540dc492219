"""The stored runs a public demo replays: tracked in demo/runs/ (made by scripts/make_demo_runs.py with the
embedded model), copied into the workspace's runs/ on a demo start so that the Runs tab lists, replays, compares
and tries them like any other run. A run already in the workspace is never overwritten."""
from __future__ import annotations

import shutil
from pathlib import Path

STORED_RUNS = Path(__file__).resolve().parents[2] / "demo" / "runs"


def install_stored_runs(workspace: Path, source: Path = STORED_RUNS) -> list[str]:
    """Copy each stored run that the workspace lacks; returns the ids copied."""
    runs = Path(workspace) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    copied = []
    if not source.is_dir():
        return copied
    for folder in sorted(source.iterdir()):
        if not (folder / "config.yaml").is_file() or (runs / folder.name).exists():
            continue
        staging = runs / f".{folder.name}.copying"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        try:
            staging.rename(runs / folder.name)
        except OSError:  # another app process copied it first
            shutil.rmtree(staging, ignore_errors=True)
            continue
        copied.append(folder.name)
    return copied
