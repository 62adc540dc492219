"""Shared helpers: repeat a measurement, take the median, name the machine."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def median_seconds(run, repeats: int = 7, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        run()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), timings


def report(name: str, seconds: float, goal: str | None = None, runs: list[float] | None = None) -> None:
    spread = f" (runs: {', '.join(f'{t * 1000:.0f}' for t in runs)} ms)" if runs else ""
    goal_text = f"  goal {goal}" if goal else ""
    print(f"{name}: median {seconds * 1000:.1f} ms{goal_text}{spread}")
