"""Comparing 2–4 runs: config diff, metrics, overlaid (and replayed) curves, diagnoses and the gallery of each
run's predicted clicks on the same validation screenshots."""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from lora_core.training.config import ConfigError
from lora_core.training.presets import diff_configs
from lora_core.training.registry import RunError
from ui.runs.access import ctx_path_allowed
from ui.runs.views import (
    PALETTE,
    PALETTE_RGB,
    curve_series,
    diagnosis_html,
    esc,
    fmt_number,
    fmt_rate,
    last_step,
    state_span,
    svg_plot,
)

MAX_COMPARE = 4
REPLAY_SECONDS = 20.0

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
    axis = max((last_step(m) for *_, m in runs), default=0) if until is not None else None
    return svg_plot(series, width=760, height=300, x_max=axis)


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
        path = stored_image_path(ctx, reference.get("image"))
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



def stored_image_path(ctx, path: str | None) -> str | None:
    """A prediction row's screenshot: absolute as evaluation wrote it, or relative to the workspace (stored runs)."""
    if not path:
        return None
    given = Path(path)
    return str(given if given.is_absolute() else Path(ctx.workspace) / given)


class CompareView:
    def __init__(self, replay_state):
        self.replay_state = replay_state
        with gr.Row():
            self.choice = gr.Dropdown([], multiselect=True, max_choices=MAX_COMPARE, label="Runs to compare",
                                      elem_id="runs-compare", scale=4)
            self.diff_only = gr.Checkbox(True, label="Config: differences only", elem_id="runs-diff-only", scale=1)
            self.replay_button = gr.Button("Replay curves", elem_id="runs-replay", scale=1)
        self.curve_view = gr.HTML(elem_id="compare-curves")
        self.metrics_view = gr.HTML(elem_id="compare-metrics-view")
        with gr.Row():
            self.config_view = gr.HTML(elem_id="compare-config-view")
            self.diagnosis_view = gr.HTML(elem_id="compare-diagnosis")
        self.gallery = gr.Gallery(label="Validation screenshots: green = truth (box, cross); numbered rings = each "
                                  "run's click", columns=4, height=620, object_fit="contain",
                                  elem_id="compare-gallery", format="png")

    def wire(self, ctx):
        def compare(run_ids, diff):
            config_table, metrics_table, diagnoses = compare_tables(ctx, run_ids, diff)
            return (compare_curves(ctx, run_ids), metrics_table, config_table, diagnoses,
                    compare_gallery(ctx, run_ids))

        outputs = [self.curve_view, self.metrics_view, self.config_view, self.diagnosis_view, self.gallery]
        self.choice.change(compare, [self.choice, self.diff_only], outputs)
        self.diff_only.change(lambda ids, diff: compare_tables(ctx, ids, diff)[0], [self.choice, self.diff_only],
                              self.config_view)
        self.replay_button.click(lambda: time.time(), None, self.replay_state)
