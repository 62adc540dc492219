"""Start-up: `python app.py` to its first HTTP 200, in a new workspace and in an existing one.

    python bench/bench_startup.py --repeats 5 [--breakdown]

Each run starts the app as a subprocess on a free port, polls / until it answers 200 and kills it. The
existing workspace is prepared once beforehand (demo drawn, embedded model built) by a run left up until both
are on disk. --breakdown also times main()'s steps inside a new process (new workspace), median per step.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, machine

from lora_core.qwen.checkpoint import EMBEDDED_FOLDER, embedded_checkpoint_ready
from tests.server import free_port

TIMEOUT_S = 120


def prepared(workspace: Path) -> bool:
    """What a first start leaves behind once its background work is done."""
    return (workspace / "demo" / "manifest.json").exists() and embedded_checkpoint_ready(workspace / EMBEDDED_FOLDER)


def first_http_200(workspace: Path, wait_prepared: bool = False) -> float:
    """Seconds from starting `python app.py` to its first HTTP 200; `wait_prepared`: keep it up until the
    workspace is prepared before stopping it."""
    port = free_port()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--workspace", str(workspace), "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        seconds = time.perf_counter() - start
                        break
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"no answer within {TIMEOUT_S} s")
        while wait_prepared and not prepared(workspace):
            if time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"the workspace was not prepared within {TIMEOUT_S} s")
            time.sleep(0.2)
        return seconds
    finally:
        process.kill()
        process.wait(10)


# app.main()'s steps, one by one, in a new process: prints {step: seconds} as JSON
STEPS = """
import json, sys, time, urllib.request
marks = [("start", time.perf_counter())]
mark = lambda name: marks.append((name, time.perf_counter()))
import app
app.skip_gradio_stub_writing()
import gradio
mark("import gradio")
from ui.context import AppContext
from ui import recipe
app.tab_modules()
mark("our modules")
ctx = AppContext(sys.argv[1], resolve_now=False)
with app.server_app_made_at_launch():
    blocks = app.build_app(ctx).queue(default_concurrency_limit=4)
mark("build the Blocks")
app.patient_localhost_check()
blocks.launch(server_port=int(sys.argv[2]), max_file_size="50mb", css=app.page_css(), js=app.page_js(),
              run_history=False, prevent_thread_lock=True, quiet=True)
mark("launch")
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/", timeout=30).read()
mark("first GET /")
print(json.dumps({name: t - marks[i][1] for i, (name, t) in enumerate(marks[1:])}))
"""


def breakdown(folder: Path, repeats: int, pause: float) -> None:
    runs = []
    for number in range(repeats):
        out = subprocess.run([sys.executable, "-c", STEPS, str(folder / f"steps-{number}"), str(free_port())],
                             cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        time.sleep(pause)
    steps = ", ".join(f"{name} {statistics.median(run[name] for run in runs):.2f} s" for name in runs[0])
    total = statistics.median(sum(run.values()) for run in runs)
    print(f"in-process steps (median of {repeats}): {steps}; total {total:.2f} s", flush=True)


def show(name: str, runs: list[float]) -> None:
    print(f"{name}: median {statistics.median(runs):.2f} s (runs: {', '.join(f'{t:.2f}' for t in runs)}), goal ≤ 8 s",
          flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of rest between runs")
    parser.add_argument("--breakdown", action="store_true", help="also time main()'s steps in-process")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        fresh = []
        for number in range(args.repeats):
            fresh.append(first_http_200(folder / f"new-{number}"))
            time.sleep(args.pause)
        show("python app.py --workspace NEW_FOLDER, first HTTP 200", fresh)
        existing = folder / "existing"
        first_http_200(existing, wait_prepared=True)
        time.sleep(args.pause)
        again = []
        for _ in range(args.repeats):
            again.append(first_http_200(existing))
            time.sleep(args.pause)
        show("python app.py --workspace EXISTING_FOLDER, first HTTP 200", again)
        if args.breakdown:
            breakdown(folder, args.repeats, args.pause)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
