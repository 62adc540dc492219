"""HTML for the Runs tab: tables, the progress bar, the SVG curve chart, status, diagnosis, evaluation, log and
coverage. Pure formatting of what lora_core returns."""
from __future__ import annotations

import html
import math

from lora_core.training.log_diagnosis import explain_log

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
PALETTE_RGB = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]

CSS = """
.runs-table { border-collapse: collapse; font-size: 0.88em; margin: 0.3em 0; width: 100%; }
.runs-table th, .runs-table td { border: 1px solid var(--border-color-primary); padding: 3px 6px; text-align: left; }
.runs-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.runs-table td.differs { background: rgba(255, 200, 0, 0.18); }
.run-state-failed { color: #d11; font-weight: bold; }
.run-state-finished { color: #080; font-weight: bold; }
.run-state-stopped { color: #a60; font-weight: bold; }
.run-state-training, .run-state-evaluating, .run-state-loading, .run-state-starting, .run-state-queued,
.run-state-stopping { color: #06c; font-weight: bold; }
.run-state-waiting { color: #777; font-weight: bold; }
.run-failure { border-left: 4px solid #d11; padding: 4px 8px; margin: 4px 0; background: rgba(220, 0, 0, 0.06); }
.run-log { font-family: var(--font-mono); font-size: 0.78em; max-height: 360px; overflow: auto;
           white-space: pre-wrap; border: 1px solid var(--border-color-primary); padding: 4px;
           display: flex; flex-direction: column-reverse; }  /* stays scrolled to the newest line */
.run-log .known { background: rgba(255, 200, 0, 0.25); }
.run-log .explain { font-family: var(--font); color: #555; border-left: 3px solid #e0b000; margin: 0 0 4px 8px;
                    padding-left: 6px; }
.run-diagnosis .verdict { font-weight: bold; }
.coverage-error { color: #d11; }
.runs-note { font-size: 0.85em; opacity: 0.85; }
.run-progress { display: flex; align-items: center; gap: 6px; min-width: 220px; }
.run-progress-track { flex: 1; height: 10px; background: var(--border-color-primary); border-radius: 5px;
                      overflow: hidden; min-width: 90px; }
.run-progress-fill { height: 100%; background: #06c; transition: width 0.4s; }
.run-fill-finished { background: #080; } .run-fill-failed { background: #d11; } .run-fill-stopped { background: #a60; }
.run-progress-text { font-size: 0.85em; font-variant-numeric: tabular-nums; white-space: nowrap; }
#runs-launch-bar { align-items: end; }
.playground-result pre { white-space: pre-wrap; font-size: 0.8em; max-height: 160px; overflow: auto; }
.playground-flag { border-left: 4px solid #e0b000; padding: 2px 8px; background: rgba(255, 200, 0, 0.12); }
"""



def esc(value) -> str:
    return html.escape(str(value))


def fmt_number(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_rate(value) -> str:
    return "–" if value is None else f"{value:.0%}"


def fmt_seconds(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def state_span(state: str) -> str:
    return f'<span class="run-state-{esc(state)}" data-field="state">{esc(state)}</span>'


def fmt_rate_per_s(value, unit: str) -> str:
    if not value:
        return "–"
    return f"{value / 1000:.1f}k {unit}/s" if value >= 10_000 else f"{value:.0f} {unit}/s"


def progress_bar(progress: dict, state: str) -> str:
    """A real bar: the share of max_steps done, step count, ETA and throughput beside it."""
    fraction = progress.get("fraction")
    if fraction is None:
        return f'<div class="run-progress" data-fraction="" data-state="{esc(state)}"><span>{esc(state)}</span></div>'
    percent = round(100 * fraction, 1)
    bits = [f'{progress["step"]}/{progress["max_steps"]}']
    if state in ("training", "stopping", "loading", "starting", "queued") and progress.get("eta_s") is not None:
        bits.append(f"ETA {fmt_seconds(progress['eta_s'])}")
    if progress.get("tokens_per_s"):
        bits.append(fmt_rate_per_s(progress["tokens_per_s"], "tokens"))
    return (f'<div class="run-progress" data-fraction="{fraction:.4f}" data-state="{esc(state)}" role="progressbar" '
            f'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}"><div class="run-progress-track">'
            f'<div class="run-progress-fill run-fill-{esc(state)}" style="width:{percent}%"></div></div>'
            f'<span class="run-progress-text" data-field="progress-text">{esc(" · ".join(bits))}</span></div>')


def runs_table(summaries, metrics_for=None) -> str:
    """Every run with its progress bar; `metrics_for(run_id)`: its metrics records, for tokens/s when the trainer
    writes no count of its own."""
    from lora_core.analysis.curves import run_progress

    if not summaries:
        return '<p id="runs-table" class="runs-note">No runs yet: pick a preset and press Launch.</p>'
    head = ["run", "state", "progress", "train loss", "eval loss", "reason"]
    rows = []
    for s in summaries:
        progress = run_progress(s.status, metrics_for(s.run_id) if metrics_for else None)
        rows.append(
            f'<tr data-run-id="{esc(s.run_id)}" data-state="{esc(s.state)}">'
            f"<td><b>{esc(s.name)}</b> <code>{esc(s.run_id)}</code></td><td>{state_span(s.state)}</td>"
            f'<td class="progress-cell" data-field="progress" data-progress="{esc(s.progress)}">'
            f"{progress_bar(progress, s.state)}</td>"
            f'<td class="num" data-field="loss">{fmt_number(s.last_loss)}</td>'
            f'<td class="num">{fmt_number(s.eval_loss)}</td><td>{esc(s.reason or "")}</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="runs-table" id="runs-table"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def svg_plot(series: list[dict], width: int = 640, height: int = 260, y_label: str = "loss",
             x_max: float | None = None) -> str:
    """A line chart as inline SVG; each series: label, color, points [(step, value)], dashed, kind, run."""
    drawn = [s for s in series if s["points"]]
    if not drawn:
        return '<div class="runs-note" data-points="0">No loss logged yet.</div>'
    left, right, top, bottom = 58, 12, 12, 34
    xs = [p[0] for s in drawn for p in s["points"]]
    ys = [p[1] for s in drawn for p in s["points"] if p[1] == p[1]]
    x_max = max(max(xs), x_max or 1, 1)  # a replay keeps the whole run's axis
    y_min, y_max = min(ys), max(ys)
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    pad = (y_max - y_min) * 0.06
    y_min, y_max = y_min - pad, y_max + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(step):
        return left + plot_w * step / x_max

    def y_at(value):
        return top + plot_h * (1 - (value - y_min) / (y_max - y_min))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-size="11" font-family="sans-serif">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(5):
        value = y_min + (y_max - y_min) * i / 4
        y = y_at(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    for i in range(5):
        step = x_max * i / 4
        x = x_at(step)
        parts.append(f'<text x="{x:.1f}" y="{height - 18}" text-anchor="middle">{step:.0f}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">step</text>'
                 f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
                 f'text-anchor="middle">{esc(y_label)}</text>')
    legend_y = top + 14
    for s in drawn:
        points = " ".join(f"{x_at(x):.1f},{y_at(y):.1f}" for x, y in s["points"] if y == y)
        dash = ' stroke-dasharray="6 4"' if s.get("dashed") else ""
        parts.append(f'<polyline fill="none" stroke="{s["color"]}" stroke-width="2"{dash} points="{points}" '
                     f'data-series="{esc(s.get("kind", ""))}" data-run="{esc(s.get("run", ""))}" '
                     f'data-points="{len(s["points"])}"/>')
        if len(s["points"]) <= 12:
            parts += [f'<circle cx="{x_at(x):.1f}" cy="{y_at(y):.1f}" r="2.5" fill="{s["color"]}"/>'
                      for x, y in s["points"] if y == y]
        parts.append(f'<line x1="{left + plot_w - 190}" x2="{left + plot_w - 170}" y1="{legend_y - 4}" '
                     f'y2="{legend_y - 4}" stroke="{s["color"]}" stroke-width="2"{dash}/>'
                     f'<text x="{left + plot_w - 166}" y="{legend_y}">{esc(s["label"][:30])}</text>')
        legend_y += 14
    parts.append("</svg>")
    return "".join(parts)


def diagnosis_html(diagnoses, flag: str | None = None) -> str:
    items = [f'<li data-verdict="{esc(d.verdict)}"><span class="verdict">{esc(d.verdict)}</span>: {esc(d.detail)}. '
             f"<i>{esc(d.advice)}</i></li>" for d in diagnoses]
    if flag:
        items.append(f'<li data-verdict="resolution"><span class="verdict">resolution mismatch</span>: {esc(flag)}</li>')
    return f'<ul class="run-diagnosis">{"".join(items)}</ul>'


def log_html(lines: list[str]) -> str:
    out = []
    for line, known in explain_log(lines):
        if known is None:
            out.append(f"<div>{esc(line)}</div>")
        else:
            out.append(f'<div class="known" data-known="{esc(known.title)}">{esc(line)}</div>'
                       f'<div class="explain"><b>{esc(known.title)}</b> ({esc(known.source)}): '
                       f"{esc(known.explanation)}</div>")
    return f'<div class="run-log" id="run-log-lines"><div>{"".join(out) or "(no log yet)"}</div></div>'


def setup_line(status: dict) -> str:
    """How the trainer laid the run out on its device (what the auto settings chose), from status.json."""
    bits = []
    if status.get("precision"):
        bits.append(esc(status["precision"]))
    if status.get("packing"):
        budget = status.get("max_tokens_per_batch")
        bits.append(f"packed, at most {budget:,} tokens a pack" if budget else "packed")
    elif "packing" in status:
        bits.append("padded batches")
    checkpointing = status.get("gradient_checkpointing") or {}
    if checkpointing:
        layers = checkpointing.get("layers")
        where = f"first {layers} layers" if checkpointing.get("on") and layers is not None else ""
        text = f"gradient checkpointing {'on' if checkpointing.get('on') else 'off'}" + (f" ({where})" if where else "")
        if checkpointing.get("activation_budget"):
            text += f", compiled blocks keep {checkpointing['activation_budget']:.0%} of their activations"
        reason = checkpointing.get("reason")
        bits.append(f'<span title="{esc(reason)}">{esc(text)}</span>' if reason else esc(text))
    if status.get("compiled_blocks"):
        eager = (status.get("compile_stats") or {}).get("eager_from_step")
        bits.append(f"{status['compiled_blocks']} blocks compiled" + (f", eager from step {eager}" if eager else ""))
    cache = status.get("vision_cache") or {}
    if cache.get("screenshots"):
        gib = cache.get("gib") or 0
        size = f"{gib:.2f} GiB" if gib >= 0.1 else f"{gib * 1024:.0f} MiB"
        bits.append(f"vision cache {cache['screenshots']} screenshots ({size})")
    return f'<div class="runs-note" data-field="setup">{" · ".join(bits)}</div>' if bits else ""


def status_html(summary, status: dict, metrics: list[dict] | None = None) -> str:
    from lora_core.analysis.curves import run_progress

    state = summary.state
    progress = run_progress(status, metrics)
    bits = [f"<b>{esc(summary.name)}</b> — {state_span(state)}"]
    if summary.max_steps:
        bits.append(f'step <span data-field="step">{summary.step}</span>/{summary.max_steps}')
    if summary.running and summary.eta_s is not None:
        bits.append(f"ETA {fmt_seconds(summary.eta_s)}")
    if progress.get("tokens_per_s"):
        bits.append(f'<span data-field="tokens-per-s">{fmt_rate_per_s(progress["tokens_per_s"], "tokens")}</span>')
    if progress.get("tokens_seen"):
        bits.append(f'{progress["tokens_seen"]:,} tokens' + (f' / {progress["samples_seen"]:,} samples seen'
                                                             if progress.get("samples_seen") else " seen"))
    if status.get("device"):
        bits.append(esc(status["device"]))
    if status.get("train_samples") is not None:
        bits.append(f'{status["train_samples"]} train / {status.get("val_samples", 0)} validation samples')
    if status.get("peak_gpu_memory_gib"):
        bits.append(f'peak GPU memory {status["peak_gpu_memory_gib"]:.1f} GiB')
    text = (f'<div id="run-status-line" data-state="{esc(state)}">' + " · ".join(bits) + "</div>"
            + progress_bar(progress, state) + setup_line(status))
    if state == "failed":
        text += (f'<div class="run-failure" data-reason="{esc(summary.reason or "")}"><b>Failed: '
                 f'{esc(summary.reason or "error")}</b> — {esc(summary.message or "")}</div>')
    elif summary.message:
        text += f'<div class="runs-note">{esc(summary.message)}</div>'
    if status.get("skipped"):
        text += (f'<details class="runs-note"><summary>{len(status["skipped"])} sample(s) skipped</summary>'
                 + "".join(f"<div>{esc(s)}</div>" for s in status["skipped"]) + "</details>")
    if status.get("unknown_keys"):
        text += f'<div class="runs-note">Unknown config keys (ignored): {esc(", ".join(status["unknown_keys"]))}</div>'
    return text


def coverage_html(report) -> str:
    from lora_core.analysis.coverage import GROUPS

    errors = "".join(f'<div class="coverage-error" data-field="coverage-error">{esc(e)}</div>' for e in report.errors)
    head = "".join(f"<th>{esc(g)}</th>" for g in GROUPS)
    rows = []
    for entry in report.entries:
        cells = "".join(f'<td class="num">{entry.groups.get(g, "") or ""}</td>' for g in GROUPS)
        mark = "" if entry.matched else ' class="differs"'
        rows.append(f'<tr data-entry="{esc(entry.entry)}" data-matches="{len(entry.modules)}"><td{mark}>'
                    f"<code>{esc(entry.entry)}</code></td><td class=\"num\">{len(entry.modules)}</td>{cells}</tr>")
    modules = "".join(f'<td class="num">{report.groups[g]["modules"]}</td>' for g in GROUPS)
    trainable = "".join(f'<td class="num">{report.groups[g]["trainable"]:,}</td>' for g in GROUPS)
    percent = 100 * report.trainable / report.total if report.total else 0
    return (f"{errors}<table class=\"runs-table\" id=\"coverage-table\"><thead><tr><th>target entry</th>"
            f"<th>modules</th>{head}</tr></thead><tbody>{''.join(rows)}"
            f"<tr><td><b>LoRA modules per group</b></td><td class=\"num\">{sum(r['modules'] for r in report.groups.values())}"
            f"</td>{modules}</tr><tr><td><b>trainable parameters</b></td><td class=\"num\" data-field=\"trainable\">"
            f"{report.trainable:,}</td>{trainable}</tr></tbody></table>"
            f'<p class="runs-note">{report.trainable:,} trainable of {report.total:,} parameters ({percent:.3f} %), '
            f"r={report.r}. Matched by PEFT's own rule on a meta-device skeleton of <code>{esc(report.model)}</code>."
            "</p>")



def last_step(metrics: list[dict]) -> int:
    return max((int(m.get("step") or 0) for m in metrics), default=0)


def curve_series(run_id: str, label: str, color: str, metrics: list[dict], until: float | None = None) -> list[dict]:
    from lora_core.analysis.curves import curves_from_metrics

    if until is not None:
        metrics = [m for m in metrics if m.get("time", 0) <= until]
    train, evals = curves_from_metrics(metrics)
    return [{"label": f"{label} train", "color": color, "points": train, "kind": "train", "run": run_id},
            {"label": f"{label} eval", "color": color, "points": evals, "kind": "eval", "run": run_id,
             "dashed": True}]



RANDOM_WEIGHTS_NOTE = ("The embedded model has random weights and a demo run trains it for a few dozen steps on a "
                       "handful of samples, so 0 % format-valid, 0 % action type and 0 % click hit are what to "
                       "expect: these numbers show that the pipeline runs end to end, not that the run learned. "
                       "A real checkpoint (Qwen3-VL, MAI-UI) starts well above zero.")
REAL_MODEL_NOTE = ("What to expect: format-valid should reach near 100 % within the first epoch on a real "
                   "checkpoint; action type and click hit grow slower and depend on how much data there is.")


def evaluation_html(evaluation: dict | None, embedded: bool = False) -> str:
    if not evaluation:
        return ""
    if evaluation.get("state") == "running":
        return '<p class="runs-note" data-field="eval-state">Evaluating on the validation samples…</p>'
    if evaluation.get("state") == "failed":
        return f'<div class="run-failure">Evaluation failed: {esc(evaluation.get("message", ""))}</div>'
    m = evaluation.get("metrics") or {}
    note = RANDOM_WEIGHTS_NOTE if embedded else REAL_MODEL_NOTE
    return (f'<p data-field="eval-state" data-state="done"><b>Evaluation</b> on {m.get("samples", 0)} validation '
            f'samples: format-valid {fmt_rate(m.get("format_valid_rate"))}, action type '
            f'{fmt_rate(m.get("action_type_accuracy"))}, click hit {fmt_rate(m.get("click_hit_rate"))} '
            f'({m.get("click_samples", 0)} clicks), mean coordinate error '
            f'{fmt_number(m.get("mean_coordinate_error_px"), 4)} px, eval loss {fmt_number(m.get("eval_loss"))}'
            f'{" (partial)" if evaluation.get("partial") else ""}.</p>'
            f'<p class="runs-note" data-field="eval-expectation" data-embedded="{str(embedded).lower()}">{esc(note)}</p>')


def reporter_links(ctx, folder, config) -> str:
    """Where report_to wrote: TensorBoard's event files and trackio's store, both in the run folder."""
    from pathlib import Path

    reporters = [r for r in (config.sft.report_to or []) if r != "none"]
    if "all" in reporters:
        reporters = ["tensorboard", "trackio", "wandb"]
    items = []
    try:
        shown = folder.path.resolve().relative_to(Path(ctx.workspace).resolve().parent)
    except ValueError:
        shown = folder.path
    if "tensorboard" in reporters:
        events = list(folder.path.glob("runs/*/events.out.tfevents.*"))
        items.append(f'<li data-reporter="tensorboard">TensorBoard: {len(events)} event file(s) in '
                     f'<code>{esc(shown)}/runs/</code>; view with <code>tensorboard --logdir {esc(shown)}/runs</code>'
                     "</li>")
    if "trackio" in reporters:
        project = str(config.passthrough.get("project") or "huggingface")
        items.append(f'<li data-reporter="trackio">trackio: project <code>{esc(project)}</code>, run '
                     f'<code>{esc(folder.run_id)}</code> in <code>{esc(shown)}/trackio/</code> (the run sets '
                     f"<code>TRACKIO_DIR</code> there); view with <code>TRACKIO_DIR={esc(shown)}/trackio trackio "
                     f"show --project {esc(project)}</code></li>")
    if "wandb" in reporters:
        items.append('<li data-reporter="wandb">Weights &amp; Biases: see the run named '
                     f"<code>{esc(folder.run_id)}</code> in your wandb project.</li>")
    if not items:
        return ""
    return f'<ul class="runs-note" id="run-reporters">{"".join(items)}</ul>'
