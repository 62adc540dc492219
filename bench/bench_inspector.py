"""Mask Inspector benchmarks: server time of one preview, and the audit of a 1,000-sample dataset.

    python bench/bench_inspector.py            # the full run (1,000-sample audits)
    python bench/bench_inspector.py --quick    # a smoke run: 20-sample audits, fewer repeats

The preview sample is ~6,200 tokens: a 1080×2400 screenshot at max side 1024 (448 pads) plus a long
history of answers. "cold" clears the render cache before every run (a new sample); "mode switch" is
the same sample again in the other label mode (the render is reused, the labels and HTML are not).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, median_seconds, report

ANSWER = ("<thinking>The list shows the shared folders; Sales is not visible yet, so I scroll down to bring more rows "
          "into view before choosing step {n}.</thinking><tool_call>{{\"name\": \"mobile_use\", \"arguments\": "
          "{{\"action\": \"swipe\", \"direction\": \"up\", \"coordinate\": [540, {y}]}}}}</tool_call>")


def long_sample(image: str, history_steps: int) -> dict:
    messages = [{"role": "system", "content": "You are a GUI agent. Answer with <thinking></thinking> and <tool_call></tool_call>."},
                {"role": "user", "content": "Open CloudDrive and find the Sales folder"}]
    for n in range(history_steps):
        messages.append({"role": "assistant", "content": ANSWER.format(n=n, y=900 + n)})
    messages.append({"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": "Current screenshot"}]})
    messages.append({"role": "assistant", "content": ANSWER.format(n=history_steps, y=1200)})
    return {"id": "long", "messages": messages}


def longest_history(ctx, limit: int) -> int:
    """The most history steps whose sample still fits in `limit` tokens (the model's encoder at max side 1024)."""
    from lora_core.data.samples import Sample
    from ui.inspector import setting_encoder

    encoder = setting_encoder(ctx, "max1024")
    geometries = [encoder.geometry(1080, 2400)]
    steps = 1
    while True:
        messages = long_sample("screen.png", steps + 1)["messages"]
        if len(encoder.render(Sample(messages, [None]), geometries).input_ids) > limit:
            return steps
        steps += 1


def write_dataset(folder: Path, records: list[dict], screens: Path) -> Path:
    shutil.copytree(screens, folder / "screens", dirs_exist_ok=True)
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def bench_preview(ctx, folder: Path, repeats: int = 9) -> None:
    from lora_core.analysis import masking
    from ui.inspector import file_source, preview

    path = write_dataset(folder, [long_sample("screens/files_root.png", longest_history(ctx, 6200))],
                         ctx.demo.root / "screens")
    source = file_source(str(path))
    args = (source, 0, "last", 6200, "max1024", 1080, 2400)
    counts_html, tokens_html, *_ = preview(ctx, *args, None)
    length = int(counts_html.split('data-count="total">')[1].split("<")[0].replace(",", ""))
    print(f"preview sample: {length:,} tokens, {len(tokens_html) / 1024:.0f} KiB of token HTML")

    def cold():
        masking._RENDER_CACHE.clear()
        preview(ctx, *args, None)

    seconds, runs = median_seconds(cold, repeats=repeats, warmup=2)
    report(f"preview of a {length:,}-token sample (render + labels + HTML + history variants)", seconds, "≤ 150 ms", runs)

    shown = preview(ctx, *args, None)[-1]
    switched = (source, 0, "all", 6200, "max1024", 1080, 2400)
    seconds, runs = median_seconds(lambda: preview(ctx, *switched, shown), repeats=repeats, warmup=1)
    report("the same sample, mode switched to all (changed tokens highlighted)", seconds, runs=runs)


def audit_records(ctx, count: int) -> list[dict]:
    """`count` distinct samples: the demo trajectories sliced with 1–3 screenshots kept, each task numbered."""
    from lora_core.data.datasets import demo_dataset

    base = [entry.record for keep in (1, 2, 3) for entry in demo_dataset(ctx.demo, keep).entries]
    records = []
    for n in range(count):
        record = json.loads(json.dumps(base[n % len(base)]))
        record["id"] = f"sample-{n}"
        record["messages"][1]["content"] += f" (variant {n})"
        records.append(record)
    return records


def bench_audit(ctx, folder: Path, count: int = 1000, repeats: int = 3) -> None:
    from lora_core.analysis.audit import audit_dataset
    from lora_core.data.datasets import read_dataset
    from ui.inspector import setting_encoder

    path = write_dataset(folder, audit_records(ctx, count), ctx.demo.root / "screens")
    encoder = setting_encoder(ctx, "max1024", "last", 6200)

    def run():
        audit_dataset(read_dataset(path), encoder)

    seconds, runs = median_seconds(run, repeats=repeats, warmup=1)
    report(f"audit of {count:,} demo samples (read JSONL, image headers, render, labels, findings)", seconds,
           "≤ 15 s", runs)

    steps = longest_history(ctx, 6200)
    long_records = []
    for n in range(count):
        record = long_sample("screens/files_root.png", steps)
        record["messages"][1]["content"] += f" (variant {n})"
        long_records.append(record)
    long_path = write_dataset(folder / "long", long_records, ctx.demo.root / "screens")

    def run_long():
        audit_dataset(read_dataset(long_path), encoder)

    seconds, runs = median_seconds(run_long, repeats=repeats, warmup=0)
    report(f"audit of {count:,} samples of ~6,200 tokens each (the preview sample, varied)", seconds, "≤ 15 s", runs)

    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "lora_core", "audit", str(path), "--max-dim", "1024", "--json",
                             "--workspace", str(ctx.workspace)], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(result.stderr)
    totals = json.loads(result.stdout)["totals"]
    report(f"`python -m lora_core audit` on the {count:,} demo samples, process start to JSON, one run "
           f"({totals['read']} read, median length {totals['length']['median']})", elapsed, "≤ 15 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20-sample audits and fewer repeats (numbers not comparable to the goals)")
    args = parser.parse_args()
    from ui.context import AppContext

    count, repeats = (20, 1) if args.quick else (1000, None)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-inspector-") as folder:
        folder = Path(folder)
        ctx = AppContext(folder / "workspace")
        ctx.model_info()
        (folder / "preview").mkdir()
        (folder / "audit").mkdir()
        bench_preview(ctx, folder / "preview", repeats or 9)
        bench_audit(ctx, folder / "audit", count, repeats or 3)


if __name__ == "__main__":
    main()
