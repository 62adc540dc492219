"""Runs tab benchmarks on the CPU: a tiny 60-step LoRA run end to end (start-up included), the coverage
check, and the live view's refresh.

    python bench/bench_runs.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, median_seconds, report

from lora_core.training.registry import RUNNING_STATES, RunManager


def tiny_60_step_config():
    from lora_core.training.presets import preset

    config = preset("tiny-cpu").config()
    config.sft.max_steps = 60
    config.sft.eval_steps = config.sft.save_steps = 30
    config.evaluation.max_samples, config.evaluation.max_new_tokens = 4, 48
    return config


def bench_tiny_run(workspace: Path, repeats: int) -> None:
    """Launch → finished (training, eval loss, adapter, generation on validation), as the app does it."""
    manager = RunManager(workspace)
    totals, first_points, losses = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        run_id = manager.start(tiny_60_step_config(), name="bench-60")
        folder = manager.folder(run_id)
        first = None
        while True:
            status = manager.refresh(run_id)
            if first is None and folder.metrics_path.exists():
                first = time.perf_counter() - started
            if status.get("state") not in RUNNING_STATES + ("created",):
                break
            time.sleep(0.1)
        totals.append(time.perf_counter() - started)
        first_points.append(first or float("nan"))
        assert status["state"] == "finished", (status, folder.log_tail(20))
        train = [m["loss"] for m in folder.read_metrics() if m.get("kind") == "train"]
        losses.append((train[0], train[-1]))
    report("tiny run, 60 steps, launch to finished (incl. start-up, eval, generation)", statistics.median(totals),
           "≤ 60 s", totals)
    report("tiny run: launch to first curve point", statistics.median(first_points), None, first_points)
    print(f"  loss first → last step per run: {', '.join(f'{a:.3f} → {b:.3f}' for a, b in losses)}")


def bench_coverage_cli(workspace: Path) -> None:
    from lora_core.training.config import dump_yaml

    path = workspace / "coverage.yaml"
    path.write_text(dump_yaml(tiny_60_step_config()))

    def run():
        subprocess.run([sys.executable, "-m", "lora_core", "coverage", "--config", str(path), "--workspace",
                        str(workspace), "--json"], cwd=ROOT, check=True, capture_output=True)

    seconds, runs = median_seconds(run, repeats=3, warmup=0)
    report("coverage CLI (new process: imports, meta skeleton, PEFT)", seconds, None, runs)


def bench_live_refresh(workspace: Path) -> None:
    """Server time of one timer tick: the run table and the selected run's view, with the runs benchmarked above."""
    from ui.context import AppContext
    from ui.runs import run_detail, runs_table

    ctx = AppContext(workspace)
    run_id = ctx.runs.list_runs()[0].run_id

    def run():
        runs_table(ctx.runs.list_runs())
        run_detail(ctx, run_id)

    seconds, runs = median_seconds(run, repeats=9, warmup=2)
    report(f"live view refresh ({len(ctx.runs.list_runs())} runs listed, one shown)", seconds, "≤ 250 ms", runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    folder = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        from lora_core.qwen.checkpoint import ensure_embedded_checkpoint

        ensure_embedded_checkpoint(folder)
        bench_tiny_run(folder, args.repeats)
        bench_coverage_cli(folder)
        bench_live_refresh(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
