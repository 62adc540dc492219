"""Runs: configure a LoRA run in the seed's schema, check what it attaches to, launch it in the background,
watch it, and compare 2–4 runs side by side. All logic lives in lora_core (run_config, coverage, runs,
curves, evaluate); this module wires components and formats what they return."""
from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path

import gradio as gr

from lora_core.training.config import (
    FIELDS,
    REPORTERS,
    ConfigError,
    RunConfig,
    config_from_dict,
    dump_yaml,
    load_yaml_text,
    targets_from_text,
    targets_to_text,
)
from lora_core.training.presets import PRESETS, diff_configs, preset, uses_vision_lora, with_vision_lora
from lora_core.training.log_diagnosis import explain_log
from lora_core.training.registry import RunError

REFRESH_SECONDS = 2.0
MAX_COMPARE = 4
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
PALETTE_RGB = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
DEMO_HIDDEN = ("model", "data.path", "training.gpus", "training.use_4bit")
REPLAY_SECONDS = 20.0
DEFAULT_PRESET = "tiny-cpu"

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
"""


# ----------------------------------------------------------------- form <-> RunConfig


def form_value(spec, value):
    if spec.kind == "targets":
        return targets_to_text(value)
    if spec.kind == "reporters":
        return list(value)
    if spec.kind == "str" and value is None:
        return ""
    return value


def form_values(config: RunConfig) -> list:
    return [form_value(spec, config.get(spec.path)) for spec in FIELDS]


def config_from_form(values: list, unknown: dict | None = None) -> RunConfig:
    """Raises ConfigError with the key's name when a value is unusable."""
    data: dict = {}
    for spec, value in zip(FIELDS, values):
        if spec.kind == "targets":
            value = targets_from_text(value)
        elif spec.kind == "str" and isinstance(value, str) and not value.strip():
            value = None
        elif spec.kind in ("int", "float") and spec.nullable and not value:
            value = None  # a number box cannot be empty: 0 means "not set"
        elif spec.kind == "int" and isinstance(value, float) and value == int(value):
            value = int(value)
        node = data
        keys = spec.path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    for path, value in (unknown or {}).items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config_from_dict(data).config


def make_component(spec, config: RunConfig, demo: bool):
    value = form_value(spec, config.get(spec.path))
    info = spec.help or ""
    if spec.kind in ("int", "float") and spec.nullable:
        info = (info + "; " if info else "") + "0 = not set"
    common = dict(label=spec.label, info=info or None, elem_id=f"cfg-{spec.path.replace('.', '-')}",
                  visible=not (demo and spec.path in DEMO_HIDDEN))
    if spec.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if spec.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if spec.kind == "int" else None, minimum=spec.minimum,
                         maximum=spec.maximum, **common)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=value, **common)
    if spec.kind == "reporters":
        return gr.Dropdown(list(REPORTERS), value=value, multiselect=True, **common)
    if spec.kind == "targets":
        return gr.Textbox(value=value, lines=7, max_lines=20, **common)
    return gr.Textbox(value=value, **common)


# ----------------------------------------------------------------- formatting


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


def runs_table(summaries) -> str:
    if not summaries:
        return '<p id="runs-table" class="runs-note">No runs yet: pick a preset and press Launch.</p>'
    head = ["run", "state", "step", "ETA", "train loss", "eval loss", "reason"]
    rows = []
    for s in summaries:
        rows.append(
            f'<tr data-run-id="{esc(s.run_id)}" data-state="{esc(s.state)}">'
            f"<td><b>{esc(s.name)}</b><br><code>{esc(s.run_id)}</code></td><td>{state_span(s.state)}</td>"
            f'<td class="num" data-field="progress">{esc(s.progress)}</td>'
            f'<td class="num">{fmt_seconds(s.eta_s) if s.running else "–"}</td>'
            f'<td class="num" data-field="loss">{fmt_number(s.last_loss)}</td>'
            f'<td class="num">{fmt_number(s.eval_loss)}</td><td>{esc(s.reason or "")}</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="runs-table" id="runs-table"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def svg_plot(series: list[dict], width: int = 640, height: int = 260, y_label: str = "loss") -> str:
    """A line chart as inline SVG; each series: label, color, points [(step, value)], dashed, kind, run."""
    drawn = [s for s in series if s["points"]]
    if not drawn:
        return '<div class="runs-note" data-points="0">No loss logged yet.</div>'
    left, right, top, bottom = 58, 12, 12, 34
    xs = [p[0] for s in drawn for p in s["points"]]
    ys = [p[1] for s in drawn for p in s["points"] if p[1] == p[1]]
    x_max = max(max(xs), 1)
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


def status_html(summary, status: dict) -> str:
    state = summary.state
    bits = [f"<b>{esc(summary.name)}</b> — {state_span(state)}"]
    if summary.max_steps:
        bits.append(f'step <span data-field="step">{summary.step}</span>/{summary.max_steps}')
    if summary.running and summary.eta_s is not None:
        bits.append(f"ETA {fmt_seconds(summary.eta_s)}")
    if status.get("device"):
        bits.append(esc(status["device"]))
    if status.get("train_samples") is not None:
        bits.append(f'{status["train_samples"]} train / {status.get("val_samples", 0)} validation samples')
    if status.get("peak_gpu_memory_gib"):
        bits.append(f'peak GPU memory {status["peak_gpu_memory_gib"]:.1f} GiB')
    text = f'<div id="run-status-line" data-state="{esc(state)}">' + " · ".join(bits) + "</div>"
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


# ----------------------------------------------------------------- run views


def curve_series(run_id: str, label: str, color: str, metrics: list[dict], until: float | None = None) -> list[dict]:
    from lora_core.analysis.curves import curves_from_metrics

    if until is not None:
        metrics = [m for m in metrics if m.get("time", 0) <= until]
    train, evals = curves_from_metrics(metrics)
    return [{"label": f"{label} train", "color": color, "points": train, "kind": "train", "run": run_id},
            {"label": f"{label} eval", "color": color, "points": evals, "kind": "eval", "run": run_id,
             "dashed": True}]


def run_detail(ctx, run_id: str | None):
    """status, curve, diagnosis + evaluation, log — for the selected run."""
    from lora_core.analysis.curves import diagnose, resolution_flag

    if not run_id:
        return ("<div class=\"runs-note\">Select a run.</div>", svg_plot([]), "", log_html([]))
    try:
        summary = ctx.runs.summary(run_id)
    except RunError as error:
        return (f'<div class="run-failure">{esc(error)}</div>', svg_plot([]), "", log_html([]))
    folder = ctx.runs.folder(run_id)
    metrics = folder.read_metrics()
    curve = svg_plot(curve_series(run_id, summary.name, PALETTE[0], metrics))
    evaluation = folder.read_eval()
    flag = resolution_flag(summary.status.get("image_settings"), (evaluation or {}).get("image_settings"))
    text = diagnosis_html(diagnose(metrics), flag) + evaluation_html(evaluation)
    return status_html(summary, summary.status), curve, text, log_html(folder.log_tail(40))


def evaluation_html(evaluation: dict | None) -> str:
    if not evaluation:
        return ""
    if evaluation.get("state") == "running":
        return '<p class="runs-note" data-field="eval-state">Evaluating on the validation samples…</p>'
    if evaluation.get("state") == "failed":
        return f'<div class="run-failure">Evaluation failed: {esc(evaluation.get("message", ""))}</div>'
    m = evaluation.get("metrics") or {}
    return (f'<p data-field="eval-state" data-state="done"><b>Evaluation</b> on {m.get("samples", 0)} validation '
            f'samples: format-valid {fmt_rate(m.get("format_valid_rate"))}, action type '
            f'{fmt_rate(m.get("action_type_accuracy"))}, click hit {fmt_rate(m.get("click_hit_rate"))} '
            f'({m.get("click_samples", 0)} clicks), mean coordinate error '
            f'{fmt_number(m.get("mean_coordinate_error_px"), 4)} px, eval loss {fmt_number(m.get("eval_loss"))}'
            f'{" (partial)" if evaluation.get("partial") else ""}.</p>')


def run_choices(ctx) -> list[tuple[str, str]]:
    return [(f"{s.name} · {s.state} · {s.run_id}", s.run_id) for s in ctx.runs.list_runs()]


# ----------------------------------------------------------------- comparison


def compare_tables(ctx, run_ids: list[str], diff_only: bool):
    """config table, metrics table, diagnoses — for 2–4 runs."""
    from lora_core.analysis.curves import diagnose, resolution_flag

    run_ids = [r for r in (run_ids or [])][:MAX_COMPARE]
    if not run_ids:
        return ('<p class="runs-note">Pick 2–4 runs to compare.</p>', "", "")
    configs, summaries, folders = {}, {}, {}
    for run_id in run_ids:
        try:
            folders[run_id] = ctx.runs.folder(run_id)
            summaries[run_id] = ctx.runs.summary(run_id)
            configs[run_id] = folders[run_id].load_config()
        except (RunError, ConfigError, OSError) as error:
            return (f'<div class="run-failure">{esc(error)}</div>', "", "")
    head = "".join(f'<th style="color:{PALETTE[i]}">{esc(summaries[r].name)}</th>' for i, r in enumerate(run_ids))
    rows = []
    for path, values in diff_configs(configs, diff_only):
        differs = any(v != values[0] for v in values[1:])
        cells = "".join(f'<td class="{"differs" if differs else ""}">{esc(fmt_config_value(v))}</td>' for v in values)
        rows.append(f'<tr data-key="{esc(path)}"><td><code>{esc(path)}</code></td>{cells}</tr>')
    if not rows:
        rows.append(f'<tr><td colspan="{len(run_ids) + 1}">The configs are identical.</td></tr>')
    config_table = (f'<table class="runs-table" id="compare-config"><thead><tr><th>key</th>{head}</tr></thead>'
                    f'<tbody>{"".join(rows)}</tbody></table>')

    metric_rows, diagnosis_parts = [], []
    for i, run_id in enumerate(run_ids):
        summary = summaries[run_id]
        evaluation = folders[run_id].read_eval() or {}
        m = evaluation.get("metrics") or {}
        flag = resolution_flag(summary.status.get("image_settings"), evaluation.get("image_settings"))
        settings = evaluation.get("image_settings") or summary.status.get("image_settings") or {}
        metric_rows.append(
            f'<tr data-run-id="{esc(run_id)}"><td style="color:{PALETTE[i]}"><b>{esc(summary.name)}</b></td>'
            f"<td>{state_span(summary.state)}</td><td class=\"num\">{esc(summary.progress)}</td>"
            f'<td class="num">{fmt_number(summary.last_loss)}</td><td class="num">{fmt_number(summary.eval_loss)}</td>'
            f'<td class="num">{fmt_rate(m.get("format_valid_rate"))}</td>'
            f'<td class="num">{fmt_rate(m.get("action_type_accuracy"))}</td>'
            f'<td class="num">{fmt_rate(m.get("click_hit_rate"))}</td>'
            f'<td class="num">{fmt_number(m.get("mean_coordinate_error_px"), 4)}</td>'
            f'<td>{esc(settings.get("max_dim", "–"))}</td>'
            f'<td data-field="resolution-flag">{"⚠ " + esc("differs from training") if flag else "ok"}</td></tr>')
        diagnosis_parts.append(f'<div data-run-id="{esc(run_id)}"><b style="color:{PALETTE[i]}">'
                               f'{esc(summary.name)}</b>{diagnosis_html(diagnose(folders[run_id].read_metrics()), flag)}'
                               "</div>")
    metrics_table = ('<table class="runs-table" id="compare-metrics"><thead><tr><th>run</th><th>state</th><th>step</th>'
                     "<th>train loss</th><th>eval loss</th><th>format-valid</th><th>action type</th><th>click hit</th>"
                     "<th>coord. error (px)</th><th>eval max_dim</th><th>resolution</th></tr></thead><tbody>"
                     + "".join(metric_rows) + "</tbody></table>")
    return config_table, metrics_table, "".join(diagnosis_parts)


def fmt_config_value(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is None:
        return "–"
    return str(value)


def compare_curves(ctx, run_ids: list[str], replay_started: float | None = None) -> str:
    series = []
    runs = []
    for i, run_id in enumerate((run_ids or [])[:MAX_COMPARE]):
        try:
            folder = ctx.runs.folder(run_id)
            name = ctx.runs.summary(run_id).name
        except RunError:
            continue
        runs.append((i, run_id, name, folder.read_metrics()))
    until = None
    if replay_started is not None:
        longest = max((m[-1].get("time", 0) for *_, m in runs if m), default=0)
        until = (time.time() - replay_started) / REPLAY_SECONDS * longest
    for i, run_id, name, metrics in runs:
        series += curve_series(run_id, name, PALETTE[i], metrics, until)
    return svg_plot(series, width=760, height=300)


def compare_gallery(ctx, run_ids: list[str], limit: int = 6):
    """The same validation screenshots with each run's predicted click (numbered rings) and the truth (green)."""
    from lora_core.training.evaluate import draw_predictions

    run_ids = (run_ids or [])[:MAX_COMPARE]
    predictions = {}
    names = {}
    for run_id in run_ids:
        try:
            predictions[run_id] = {row["id"]: row for row in ctx.runs.folder(run_id).read_predictions() if "id" in row}
            names[run_id] = ctx.runs.summary(run_id).name
        except RunError:
            continue
    ids = []
    for rows in predictions.values():
        ids += [i for i in rows if i not in ids]
    images = []
    for sample_id in ids[:limit]:
        rows = [predictions[r].get(sample_id) for r in run_ids if r in predictions]
        reference = next(row for row in rows if row)
        path = reference.get("image")
        if not path or not ctx_path_allowed(ctx, path):
            continue
        marks = [(names[r], PALETTE_RGB[i], predictions[r].get(sample_id)) for i, r in enumerate(run_ids)
                 if r in predictions]
        try:
            picture = draw_predictions(Path(path), reference, marks)
        except (OSError, ValueError):
            continue
        verdicts = []
        for number, (name, _, row) in enumerate(marks, start=1):
            if not row:
                verdicts.append(f"{number} {name}: –")
            elif "hit" in row:
                verdicts.append(f"{number} {name}: {'hit' if row['hit'] else 'miss'}")
            else:
                verdicts.append(f"{number} {name}: {(row.get('pred_action') or {}).get('action', 'invalid')}")
        truth = (reference.get("truth_action") or {}).get("action", "?")
        images.append((picture, f"{sample_id} (truth: {truth}) — " + "; ".join(verdicts)))
    return images


def ctx_path_allowed(ctx, path: str) -> bool:
    """Prediction rows name screenshots. View-only (exposed, no login): only files inside the run folders (and
    the app's own demo screenshots, workspace/demo); the demo: inside the workspace; else anywhere readable."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        return False
    if view_only(ctx):
        workspace = Path(ctx.workspace)
        return inside(resolved, workspace / "runs") or inside(resolved, workspace / "demo")
    if not ctx.demo_mode:
        return True
    return ctx.workspace in resolved.parents


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` (resolved: symlinks followed) lies inside `folder`."""
    folder = Path(folder).resolve()
    path = Path(path).resolve()
    return path == folder or folder in path.parents


def view_only(ctx) -> bool:
    """Served beyond this machine without --auth: Runs shows runs and acts on none (ui.context)."""
    return bool(getattr(ctx, "view_only", False))


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def model_path_problem(ctx, model, hub_ids: bool = True) -> str | None:
    """A sentence when `model` names a server path outside the workspace (the embedded model and the app's own
    --model are always fine; a hub id when `hub_ids`)."""
    text = str(model or "").strip()
    if text in ("", "embedded") or text == str(ctx.model_arg or ""):
        return None
    from lora_core.training.registry import ROOT

    given = Path(text).expanduser()
    places = [given] if given.is_absolute() else [Path.cwd() / given, ROOT / given]  # the app's, the trainer's
    if HUB_ID.fullmatch(text) and not any(place.exists() for place in places):
        if hub_ids:
            return None
        return (f"model {text!r} is a hub id; without a login this app loads only the embedded model or a "
                "checkpoint inside its workspace (start it with --auth USER:PASSWORD to allow more).")
    if all(inside(place, ctx.workspace) for place in places):
        return None
    return (f"model {text!r} is a path outside the app's workspace; a config sent to this app may name only a "
            "checkpoint folder inside the workspace (or embedded).")


def data_path_problem(ctx, data, relative_to: Path | None = None) -> str | None:
    """A sentence when a dataset path lies outside the workspace (relative: from `relative_to`, the run folder)."""
    text = str(data or "").strip()
    if not text:
        return None
    given = Path(text).expanduser()
    place = given if given.is_absolute() else Path(relative_to or Path.cwd()) / given
    if inside(place, ctx.workspace):
        return None
    return (f"data.path {text!r} is outside the app's workspace; a config sent to this app may name only a "
            "dataset inside the workspace (or none: the demo trajectories).")


def path_problems(ctx, config: RunConfig, data_file: Path | None, api: bool) -> list[str]:
    """Server paths a remote user may not name: over the API always, and everywhere when view-only."""
    if not (api or view_only(ctx)):
        return []
    run_folder = Path(ctx.workspace) / "runs" / "run"  # data.path is read relative to runs/<id>/
    problems = [model_path_problem(ctx, config.model, hub_ids=not view_only(ctx)),
                data_path_problem(ctx, config.data.path, run_folder),
                data_path_problem(ctx, data_file) if data_file is not None else None]
    return [problem for problem in problems if problem]


# ----------------------------------------------------------------- launching


VIEW_ONLY = ("This app is served beyond this machine without a login, so the Runs tab is view-only: it does not "
             "{what}. Start the app with --auth USER:PASSWORD to let logged-in users train.")


def launch_refusal(ctx, request: gr.Request | None, what: str = "launch runs") -> str | None:
    if ctx.demo_mode and ctx.exposed and not getattr(request, "username", None):
        return ("This public demo replays stored runs; launching training needs a login. Start the app with "
                "--auth USER:PASSWORD to let trusted users train.") if what == "launch runs" else \
            VIEW_ONLY.format(what=what)
    if view_only(ctx):
        return VIEW_ONLY.format(what=what)
    return None


def build(ctx, blocks: gr.Blocks) -> None:
    """The Runs tab."""
    initial = preset(DEFAULT_PRESET).config()
    initial.model = ctx.model_arg
    unknown_state = gr.State({})
    choices_state = gr.State([])
    replay_state = gr.State(None)
    locked = view_only(ctx)
    gr.Markdown(
        "Configure a LoRA run in the seed's YAML schema, check which modules it really attaches to, launch it in the "
        "background, and compare runs side by side." + (
            " **Demo mode:** the embedded tiny model only, at most a few dozen steps, on the demo trajectories."
            if ctx.demo_mode else "") + (
            " **View-only:** this app is served beyond this machine without a login, so runs can be watched and "
            "compared but not launched, stopped, killed or evaluated, and no field reads a path on the server. "
            "Start it with `--auth USER:PASSWORD` to lift this." if locked else ""),
        elem_id="runs-intro")
    with gr.Row():
        with gr.Column(scale=3, min_width=380):
            gr.Markdown("### 1. Run config")
            with gr.Row():
                preset_choice = gr.Dropdown([(p.label, p.key) for p in PRESETS], value=DEFAULT_PRESET,
                                            label="Preset (from the seed's tables)", elem_id="runs-preset")
                run_name = gr.Textbox(value="", label="Run name", placeholder="e.g. r16-llm-only",
                                      elem_id="runs-name")
            preset_note = gr.Markdown(preset_text(DEFAULT_PRESET), elem_classes="runs-note")
            vision = gr.Checkbox(uses_vision_lora(initial), label="Vision LoRA (adds attn.qkv, attn.proj, "
                                 "mlp.linear_fc1, mlp.linear_fc2 of the vision blocks)", elem_id="runs-vision")
            components = []
            groups = []
            for spec in FIELDS:
                if spec.group not in groups:
                    groups.append(spec.group)
            for group in groups:
                with gr.Accordion(group, open=group in ("LoRA", "optimisation")):
                    for spec in [f for f in FIELDS if f.group == group]:
                        components.append(make_component(spec, initial, ctx.demo_mode))
        with gr.Column(scale=3, min_width=380):
            gr.Markdown("### 2. YAML, coverage, launch")
            yaml_box = gr.Code(dump_yaml(initial), language="yaml", label="config.yaml (seed schema)",
                               interactive=True, elem_id="runs-yaml", max_lines=40)
            with gr.Row():
                apply_yaml = gr.Button("Load YAML into the form", size="sm", elem_id="runs-apply-yaml")
                yaml_file = gr.File(label="…or upload a YAML", file_types=[".yaml", ".yml"], type="filepath",
                                    height=90, visible=not ctx.demo_mode)
            config_messages = gr.HTML(elem_id="runs-config-messages")
            data_path = gr.Textbox(label="Dataset: native sample JSONL on this machine (empty: demo trajectories)",
                                   elem_id="runs-data", visible=not (ctx.demo_mode or locked))
            with gr.Row():
                coverage_button = gr.Button("Check LoRA coverage", elem_id="runs-coverage-button")
                launch_button = gr.Button("Launch", variant="primary", elem_id="runs-launch", interactive=not locked)
            launch_message = gr.HTML(elem_id="runs-launch-message")
            coverage_view = gr.HTML(elem_id="runs-coverage")

    gr.Markdown("### 3. Runs (live)")
    runs_view = gr.HTML(runs_table([]), elem_id="runs-list")
    with gr.Row():
        selected = gr.Dropdown([], label="Run", elem_id="runs-selected", scale=3)
        stop_button = gr.Button("Stop (keep last checkpoint)", elem_id="runs-stop", scale=1, interactive=not locked)
        kill_button = gr.Button("Kill", variant="stop", elem_id="runs-kill", scale=1, interactive=not locked)
        eval_max_dim = gr.Number(0, label="evaluate at max_dim (0: as trained)", precision=0,
                                 elem_id="runs-eval-max-dim", scale=1)
        eval_button = gr.Button("Evaluate on validation", elem_id="runs-evaluate", scale=1, interactive=not locked)
    action_message = gr.HTML(elem_id="runs-action-message")
    status_view = gr.HTML(elem_id="run-status")
    with gr.Row():
        curve_view = gr.HTML(elem_id="run-curve")
        diagnosis_view = gr.HTML(elem_id="run-diagnosis")
    log_view = gr.HTML(elem_id="run-log")

    gr.Markdown("### 4. Compare 2–4 runs")
    with gr.Row():
        compare_choice = gr.Dropdown([], multiselect=True, max_choices=MAX_COMPARE, label="Runs to compare",
                                     elem_id="runs-compare", scale=4)
        diff_only = gr.Checkbox(True, label="Config: differences only", elem_id="runs-diff-only", scale=1)
        replay_button = gr.Button("Replay curves", elem_id="runs-replay", scale=1)
    compare_curve_view = gr.HTML(elem_id="compare-curves")
    compare_metrics_view = gr.HTML(elem_id="compare-metrics-view")
    with gr.Row():
        compare_config_view = gr.HTML(elem_id="compare-config-view")
        compare_diagnosis_view = gr.HTML(elem_id="compare-diagnosis")
    gallery = gr.Gallery(label="Validation screenshots: green = truth (box, cross); numbered rings = each run's click",
                         columns=4, height=620, object_fit="contain", elem_id="compare-gallery", format="png")
    timer = gr.Timer(REFRESH_SECONDS)

    # --- handlers: config

    def to_yaml(unknown, *values):
        try:
            return dump_yaml(config_from_form(list(values), unknown)), ""
        except ConfigError as error:
            return gr.skip(), f'<div class="coverage-error">{esc(error)}</div>'

    def apply_preset(key):
        chosen = preset(key)
        config = chosen.config()
        config.model = ctx.model_arg
        return (*form_values(config), dump_yaml(config), preset_text(key), uses_vision_lora(config), {}, "",
                config.name or "")

    def load_yaml(text):
        try:
            loaded = load_yaml_text(text or "")
        except ConfigError as error:
            gr.Warning(str(error))
            return (*[gr.skip()] * len(components), gr.skip(), gr.skip(), f'<div class="coverage-error">{esc(error)}</div>')
        if ctx.demo_mode:
            loaded.config = ctx.runs.demo_limited(loaded.config)
        messages = "".join(f'<div data-field="config-message">{esc(m)}</div>' for m in loaded.messages())
        return (*form_values(loaded.config), uses_vision_lora(loaded.config), loaded.config.extra_settings(), messages)

    def load_yaml_file(path):
        if not path:
            return (*[gr.skip()] * (len(components) + 3), gr.skip())
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            gr.Warning("That file is not UTF-8 text; upload a .yaml config.")
            return (*[gr.skip()] * (len(components) + 3), gr.skip())
        return (*load_yaml(text), text)

    def toggle_vision(targets_text, enabled):
        try:
            config = RunConfig()
            config.lora.target_modules = targets_from_text(targets_text)
            return targets_to_text(with_vision_lora(config, enabled).lora.target_modules)
        except ConfigError as error:
            gr.Warning(str(error))
            return gr.skip()

    def check_coverage(unknown, *values):
        from lora_core.analysis.coverage import CoverageError, coverage_for_config

        try:
            config = config_from_form(list(values), unknown)
            if ctx.demo_mode:
                config = ctx.runs.demo_limited(config)
            problem = model_path_problem(ctx, config.model, hub_ids=False) if view_only(ctx) else None
            if problem:
                raise ValueError(problem)
            report = coverage_for_config(config, model_path_for(ctx, config))
        except (ConfigError, CoverageError, ValueError, RuntimeError) as error:
            gr.Warning(str(error))
            return f'<div class="coverage-error">{esc(error)}</div>'
        return coverage_html(report)

    def launch(unknown, name, data, *values, request: gr.Request = None):
        try:
            config = config_from_form(list(values), unknown)
            data_file = Path(data.strip()).expanduser() if data and data.strip() and not ctx.demo_mode else None
            run_id, report = launch_checked(ctx, config, name, data_file, request)
        except LaunchRefused as error:
            gr.Warning(str(error))
            return (f'<div class="run-failure">Not launched: {esc(error)}</div>',
                    coverage_html(error.report) if error.report else gr.skip(), gr.skip())
        except (ConfigError, RunError, ValueError, RuntimeError, OSError) as error:
            gr.Warning(str(error))
            return f'<div class="run-failure">Not launched: {esc(error)}</div>', gr.skip(), gr.skip()
        choices = run_choices(ctx)
        return (f'<div data-field="launched" data-run-id="{esc(run_id)}">Launched <code>{esc(run_id)}</code>. '
                "Its curve appears below as it trains.</div>", coverage_html(report),
                gr.update(choices=choices, value=run_id))

    form_inputs = [unknown_state, *components]
    for component in components:
        component.input(to_yaml, form_inputs, [yaml_box, config_messages])
    preset_choice.input(apply_preset, preset_choice,
                        [*components, yaml_box, preset_note, vision, unknown_state, config_messages, run_name])
    apply_yaml.click(load_yaml, yaml_box, [*components, vision, unknown_state, config_messages])
    yaml_file.upload(load_yaml_file, yaml_file, [*components, vision, unknown_state, config_messages, yaml_box])
    targets_box = components[[f.path for f in FIELDS].index("training.lora.target_modules")]
    vision.input(toggle_vision, [targets_box, vision], targets_box).then(to_yaml, form_inputs,
                                                                        [yaml_box, config_messages])
    coverage_button.click(check_coverage, form_inputs, coverage_view)
    launch_button.click(launch, [unknown_state, run_name, data_path, *components],
                        [launch_message, coverage_view, selected])

    # --- handlers: live view

    def refresh(selected_id, compare_ids, known_choices, replay_started):
        choices = run_choices(ctx)
        summaries = ctx.runs.list_runs()
        changed = choices != known_choices
        select_update = gr.update(choices=choices) if changed else gr.skip()
        compare_update = gr.update(choices=[(c[0].rsplit(" · ", 1)[0], c[1]) for c in choices]) if changed \
            else gr.skip()
        detail = run_detail(ctx, selected_id)
        running = {s.run_id for s in summaries if s.running}
        if compare_ids and (running & set(compare_ids) or replay_started is not None):
            curves = compare_curves(ctx, compare_ids, replay_started)
            if replay_started is not None and time.time() - replay_started > REPLAY_SECONDS:
                replay_started = None
        else:
            curves = gr.skip()
        return (runs_table(summaries), select_update, compare_update, choices, *detail, curves, replay_started)

    timer.tick(refresh, [selected, compare_choice, choices_state, replay_state],
               [runs_view, selected, compare_choice, choices_state, status_view, curve_view, diagnosis_view,
                log_view, compare_curve_view, replay_state], show_progress="hidden")
    selected.change(lambda run_id: run_detail(ctx, run_id), selected,
                    [status_view, curve_view, diagnosis_view, log_view], show_progress="hidden")

    def act(kind, run_id, max_dim=None, request: gr.Request = None):
        refusal = launch_refusal(ctx, request, {"stop": "stop runs", "kill": "kill runs"}.get(kind, "evaluate runs"))
        if refusal:
            gr.Warning(refusal)
            return f'<div class="run-failure" data-field="refused">{esc(refusal)}</div>'
        if not run_id:
            gr.Warning("Select a run first.")
            return ""
        try:
            if kind == "stop":
                message = ctx.runs.stop(run_id)
            elif kind == "kill":
                message = ctx.runs.kill(run_id)
            else:
                if ctx.demo_mode and max_dim:
                    max_dim = max(256, min(int(max_dim), 1024))
                message = ctx.runs.evaluate(run_id, max_dim=int(max_dim) if max_dim else None)
        except (RunError, ValueError) as error:
            gr.Warning(str(error))
            return f'<div class="run-failure">{esc(error)}</div>'
        return f"<div>{esc(message)}</div>"

    def stop_run(run_id, request: gr.Request = None):
        return act("stop", run_id, request=request)

    def kill_run(run_id, request: gr.Request = None):
        return act("kill", run_id, request=request)

    def evaluate_run(run_id, max_dim, request: gr.Request = None):
        return act("evaluate", run_id, max_dim, request=request)

    stop_button.click(stop_run, selected, action_message, api_name="runs_stop")
    kill_button.click(kill_run, selected, action_message, api_name="runs_kill")
    eval_button.click(evaluate_run, [selected, eval_max_dim], action_message, api_name="runs_evaluate")

    # --- handlers: comparison

    def compare(run_ids, diff):
        config_table, metrics_table, diagnoses = compare_tables(ctx, run_ids, diff)
        return (compare_curves(ctx, run_ids), metrics_table, config_table, diagnoses,
                compare_gallery(ctx, run_ids))

    compare_outputs = [compare_curve_view, compare_metrics_view, compare_config_view, compare_diagnosis_view, gallery]
    compare_choice.change(compare, [compare_choice, diff_only], compare_outputs)
    diff_only.change(lambda ids, diff: compare_tables(ctx, ids, diff)[0], [compare_choice, diff_only],
                     compare_config_view)
    replay_button.click(lambda: time.time(), None, replay_state)

    def initial_view():
        choices = run_choices(ctx)
        latest = choices[0][1] if choices else None
        return (runs_table(ctx.runs.list_runs()), gr.update(choices=choices, value=latest),
                gr.update(choices=[(c[0].rsplit(" · ", 1)[0], c[1]) for c in choices]), choices,
                *run_detail(ctx, latest))

    blocks.load(initial_view, None, [runs_view, selected, compare_choice, choices_state, status_view, curve_view,
                                     diagnosis_view, log_view])
    for function in api_functions(ctx):
        gr.api(function, api_name=function.__name__)


class LaunchRefused(RunError):
    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def launch_checked(ctx, config: RunConfig, name: str | None, data_file: Path | None, request=None, api=False):
    """Every check before a launch (a login when exposed, server paths, CUDA, data, LoRA coverage), then the
    launch. `api`: the config came over the HTTP API, so its model and data paths must lie inside the workspace."""
    from lora_core.analysis.coverage import coverage_for_config

    refusal = launch_refusal(ctx, request)
    if refusal:
        raise LaunchRefused(refusal)
    if ctx.demo_mode:
        config, data_file = ctx.runs.demo_limited(config), None
    problems = path_problems(ctx, config, data_file, api)  # before anything reads those paths
    if problems:
        raise LaunchRefused(problems[0])
    problems = ctx.runs.preflight(config, data_file)
    if problems:
        raise LaunchRefused(problems[0])
    report = coverage_for_config(config, model_path_for(ctx, config))
    if not report.ok:
        raise LaunchRefused(report.errors[0], report)
    run_id = ctx.runs.start(config, name=(name or "").strip() or None, data_path=data_file)
    return run_id, report


def api_functions(ctx):
    """Named HTTP endpoints (gradio_client, scripts): list runs, read one, launch from YAML."""
    from lora_core.analysis.curves import diagnose

    def runs_list() -> list[dict]:
        """Every run, newest first: run_id, name, state, step, max_steps, last loss, last eval loss, failure reason."""
        return [{"run_id": s.run_id, "name": s.name, "state": s.state, "step": s.step, "max_steps": s.max_steps,
                 "loss": s.last_loss, "eval_loss": s.eval_loss, "reason": s.reason, "message": s.message}
                for s in ctx.runs.list_runs()]

    def run_view(run_id: str) -> dict:
        """One run: its status.json, metrics.jsonl records, curve diagnosis and eval.json."""
        try:
            folder = ctx.runs.folder(run_id)
            status = ctx.runs.refresh(run_id)
        except RunError as error:
            raise gr.Error(str(error)) from None
        metrics = folder.read_metrics()
        return {"status": status, "metrics": metrics, "diagnosis": [d.as_dict() for d in diagnose(metrics)],
                "evaluation": folder.read_eval()}

    def runs_launch(config_yaml: str, name: str = "", request: gr.Request = None) -> str:
        """Launch a run from YAML in the seed's schema (training.lora / training.sft / training flags) on the demo
        trajectories, after the same checks as the Launch button; returns the run id."""
        try:
            loaded = load_yaml_text(config_yaml or "")
            run_id, _ = launch_checked(ctx, loaded.config, name, None, request, api=True)
        except (ConfigError, RunError, ValueError, RuntimeError, OSError) as error:
            raise gr.Error(str(error)) from None
        return run_id

    return runs_list, run_view, runs_launch


def preset_text(key: str) -> str:
    chosen = preset(key)
    return f"**{chosen.label}** — seed section: {chosen.section}." + (f" {chosen.note}" if chosen.note else "")


def model_path_for(ctx, config: RunConfig):
    from lora_core.qwen.checkpoint import resolve_model_path

    if config.model in (None, "", "embedded"):
        return ctx.model_info().path if ctx.model_arg == "embedded" else resolve_model_path("embedded", ctx.workspace)
    return resolve_model_path(config.model, ctx.workspace)
