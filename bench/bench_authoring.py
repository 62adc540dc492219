"""Authoring benchmarks: the click → marker handler, one store write, validation + export of 2,000 samples.

    python bench/bench_authoring.py [--runs N]

Prints the median of several runs of each, in milliseconds or seconds, beside the issue's budget.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from authoring.demo import seed_demo  # noqa: E402
from authoring.export import ExportOptions, export_store  # noqa: E402
from authoring.session import AnnotatorSession  # noqa: E402
from authoring.store import Editor, Store  # noqa: E402
from authoring.validate import validate_store  # noqa: E402
from demo import ensure_demo_data  # noqa: E402

SAMPLES = 2000


def median_of(runs: int, work) -> float:
    times = []
    for run in range(runs):
        started = time.perf_counter()
        work(run)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_click(store: Store, cache: Path, runs: int) -> float:
    """What the tab does on a click: save the point, draw the marker, build every component of the view."""
    from ui.authoring import render_view

    session = AnnotatorSession(annotator="bench")
    session.open(store, "open_sales_folder", 1)
    render_view(store, cache, session, 19)  # warm the decoded screenshot, as the first view of a step does
    return median_of(runs, lambda run: (session.click(store, 200 + 7 * run, 500 + 3 * run),
                                        render_view(store, cache, session, 19)))


def bench_write(store: Store, runs: int) -> float:
    step = store.steps("search_for_sales")[0]
    editor = Editor("bench", "bench-write")
    state = {"version": step.info.version}

    def write(run):
        state["version"] = store.edit("step", step.id, {"thinking": f"{step.thinking} {run}"}, state["version"],
                                      editor, 1).info.version

    return median_of(runs, write)


def big_store(folder: Path, demo) -> Store:
    """Demo trajectories repeated until the store holds SAMPLES samples (steps plus correction samples)."""
    store = Store(folder / "annotations.sqlite")
    seed_demo(store, demo)
    steps = {t.id: store.steps(t.id) for t in store.trajectories()}
    with store.transaction() as db:
        copy = 0
        while sum(store.sample_counts()) < SAMPLES:
            for trajectory in list(store.trajectories())[:5]:
                rows = [{"image": s.image, "thinking": s.thinking, "action": s.action,
                         "target": s.target.to_json() if s.target else None} for s in steps[trajectory.id]]
                store.insert_trajectory(db, f"{trajectory.id}-{copy}", trajectory.task, trajectory.app, "bench", rows)
            copy += 1
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-authoring-"))
    try:
        demo = ensure_demo_data(scratch / "workspace")
        store = Store(scratch / "small" / "annotations.sqlite")
        seed_demo(store, demo)
        click = bench_click(store, scratch / "cache", args.runs)
        print(f"click → marker handler: median {click * 1000:.1f} ms over {args.runs} runs (budget 100 ms)")
        write = bench_write(store, max(args.runs, 200))
        print(f"one store write: median {write * 1000:.2f} ms over {max(args.runs, 200)} runs (budget 5 ms)")
        big = big_store(scratch / "big", demo)
        samples = sum(big.sample_counts())
        runs = 3

        def validate_and_export(run):
            if validate_store(big):
                raise SystemExit("the benchmark store does not validate")
            export_store(big, scratch / f"out-{run}", "mai-ui", ExportOptions(val_ratio=0.2))

        total = median_of(runs, validate_and_export)
        print(f"validation + export of {samples:,} samples: median {total:.2f} s over {runs} runs (budget 20 s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
