"""The live list and the selected run: progress bars, status, curve (replayable), diagnosis, evaluation, log,
stop / kill / evaluate, and shipping the run (adapter zip, merge into the base)."""
from __future__ import annotations

import threading
import time

import gradio as gr

from lora_core.training.registry import RunError
from ui.runs.access import launch_refusal
from ui.runs.views import (
    PALETTE,
    curve_series,
    diagnosis_html,
    esc,
    evaluation_html,
    last_step,
    log_html,
    reporter_links,
    status_html,
    svg_plot,
)

REPLAY_SECONDS = 20.0
JOB_POLL_SECONDS = 0.5
MERGE_TIMEOUT_SECONDS = 1800


JOBS_LOCK = threading.Lock()


def jobs_of(ctx):
    """The app's background jobs (playground predictions, merges), made on first use."""
    from lora_core.training.jobs import Jobs

    with JOBS_LOCK:
        if getattr(ctx, "runs_jobs", None) is None:
            ctx.runs_jobs = Jobs(ctx.workspace)
        return ctx.runs_jobs


def embedded_run(config, status: dict) -> bool:
    from pathlib import Path

    model = status.get("model")
    if model:
        return (Path(model) / "EMBEDDED.json").exists()
    return config.model in (None, "", "embedded")


def replay_until(metrics: list[dict], replay_started: float | None) -> float | None:
    """The metrics time shown `replay_started` seconds into a replay (the whole curve in REPLAY_SECONDS)."""
    if replay_started is None or not metrics:
        return None
    times = [m.get("time", 0) for m in metrics]
    # at least the first point, so the first frame is a short curve and not an empty plot
    return max(min(times), (time.time() - replay_started) / REPLAY_SECONDS * max(times))


def run_detail(ctx, run_id: str | None, replay_started: float | None = None):
    """status, curve, diagnosis + evaluation + reporters, log — for the selected run."""
    from lora_core.analysis.curves import diagnose, resolution_flag

    if not run_id:
        return ("<div class=\"runs-note\">Select a run.</div>", svg_plot([]), "", log_html([]))
    try:
        summary = ctx.runs.summary(run_id)
        folder = ctx.runs.folder(run_id)
        config = folder.load_config()
    except (RunError, ValueError, OSError) as error:
        return (f'<div class="run-failure">{esc(error)}</div>', svg_plot([]), "", log_html([]))
    metrics = folder.read_metrics()
    until = replay_until(metrics, replay_started)
    curve = svg_plot(curve_series(run_id, summary.name, PALETTE[0], metrics, until),
                     x_max=last_step(metrics) if until is not None else None)
    evaluation = folder.read_eval()
    flag = resolution_flag(summary.status.get("image_settings"), (evaluation or {}).get("image_settings"))
    shown = [m for m in metrics if until is None or m.get("time", 0) <= until]
    text = (diagnosis_html(diagnose(shown), flag) + evaluation_html(evaluation, embedded_run(config, summary.status))
            + reporter_links(ctx, folder, config))
    return status_html(summary, summary.status, metrics), curve, text, log_html(folder.log_tail(40))


def run_choices(ctx) -> list[tuple[str, str]]:
    return [(f"{s.name} · {s.state} · {s.run_id}", s.run_id) for s in ctx.runs.list_runs()]


def checkpoint_choices(ctx, run_id: str | None) -> list[tuple[str, str]]:
    from lora_core.training.predict import checkpoint_folders

    choices = [("best (lowest eval loss)", "best"), ("last (adapter/)", "last")]
    if run_id:
        try:
            choices += [(f"checkpoint-{n}", str(n)) for n in checkpoint_folders(ctx.runs.folder(run_id))]
        except RunError:
            pass
    return choices


class LiveView:
    """The components of the live list and the selected run, for the tab's refresh to update."""

    def __init__(self, ctx, locked: bool, runs_view):
        self.runs_view = runs_view
        with gr.Row():
            self.selected = gr.Dropdown([], label="Run", elem_id="runs-selected", scale=3)
            self.replay_button = gr.Button("Replay its curve", elem_id="runs-replay-selected", scale=1, size="sm")
            self.stop_button = gr.Button("Stop (keep last checkpoint)", elem_id="runs-stop", scale=1,
                                         interactive=not locked, size="sm")
            self.kill_button = gr.Button("Kill", variant="stop", elem_id="runs-kill", scale=1,
                                         interactive=not locked, size="sm")
            self.eval_max_dim = gr.Number(0, label="evaluate at max_dim (0: as trained)", precision=0,
                                          elem_id="runs-eval-max-dim", scale=1)
            self.eval_button = gr.Button("Evaluate on validation", elem_id="runs-evaluate", scale=1,
                                         interactive=not locked, size="sm")
        self.action_message = gr.HTML(elem_id="runs-action-message")
        self.status_view = gr.HTML(elem_id="run-status")
        with gr.Row():
            self.curve_view = gr.HTML(elem_id="run-curve")
            self.diagnosis_view = gr.HTML(elem_id="run-diagnosis")
        with gr.Accordion("Log", open=False, elem_id="run-log-section"):
            self.log_view = gr.HTML(elem_id="run-log")
        with gr.Accordion("Ship it: download the adapter, or merge it into the base", open=False,
                          elem_id="run-export-section"):
            with gr.Row():
                self.export_checkpoint = gr.Dropdown(checkpoint_choices(ctx, None), value="last",
                                                     label="adapter", elem_id="runs-export-checkpoint", scale=2)
                self.zip_button = gr.Button("Download the adapter (zip)", elem_id="runs-zip", scale=1)
                self.merge_dtype = gr.Dropdown([("as the base is stored", "auto"),
                                                ("merge into the bf16 base", "bf16"), ("float32", "fp32")],
                                               value="auto", label="merged weights", elem_id="runs-merge-dtype",
                                               scale=2)
                self.merge_button = gr.Button("Merge into the base", elem_id="runs-merge", scale=1,
                                              interactive=not locked)
            self.zip_file = gr.File(label="adapter zip", elem_id="runs-zip-file", interactive=False)
            self.export_message = gr.HTML(elem_id="runs-export-message")
        self.detail_outputs = [self.status_view, self.curve_view, self.diagnosis_view, self.log_view]

    def wire(self, ctx, replay_state):
        self.selected.change(lambda run_id: (*run_detail(ctx, run_id),
                                             gr.update(choices=checkpoint_choices(ctx, run_id), value="last")),
                             self.selected, [*self.detail_outputs, self.export_checkpoint], show_progress="hidden")
        def start_replay(run_id):
            started = time.time()  # the first frame now; the timer draws the rest
            return (started, *run_detail(ctx, run_id, started))

        self.replay_button.click(start_replay, [self.selected], [replay_state, *self.detail_outputs],
                                 show_progress="hidden")

        def act(kind, run_id, max_dim=None, request: gr.Request = None):
            refusal = launch_refusal(ctx, request, {"stop": "stop runs", "kill": "kill runs"}.get(kind,
                                                                                                "evaluate runs"))
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

        self.stop_button.click(stop_run, self.selected, self.action_message, api_name="runs_stop")
        self.kill_button.click(kill_run, self.selected, self.action_message, api_name="runs_kill")
        self.eval_button.click(evaluate_run, [self.selected, self.eval_max_dim], self.action_message,
                               api_name="runs_evaluate")

        def download_zip(run_id, checkpoint):
            import tempfile

            from lora_core.training.merge import adapter_zip

            if not run_id:
                gr.Warning("Select a run first.")
                return None, ""
            try:
                path = adapter_zip(ctx.runs.folder(run_id), checkpoint or "last",
                                   tempfile.mkdtemp(prefix="adapter-zip-"))
            except (RunError, ValueError, OSError) as error:
                gr.Warning(str(error))
                return None, f'<div class="run-failure">{esc(error)}</div>'
            return str(path), f'<div data-field="zip-ready">{esc(path.name)} is ready below.</div>'

        def merge(run_id, checkpoint, dtype, request: gr.Request = None):
            refusal = launch_refusal(ctx, request, "merge runs")
            if refusal or not run_id:
                message = refusal or "Select a run first."
                gr.Warning(message)
                yield f'<div class="run-failure" data-field="refused">{esc(message)}</div>'
                return
            try:
                job_id = jobs_of(ctx).start("merge", {"workspace": str(ctx.workspace), "run_id": run_id,
                                                  "checkpoint": checkpoint or "best", "dtype": dtype or "auto"})
            except ValueError as error:
                gr.Warning(str(error))
                yield f'<div class="run-failure">{esc(error)}</div>'
                return
            yield f'<div data-field="merge-state" data-state="running">Merging {esc(run_id)} in the background…</div>'
            deadline = time.monotonic() + MERGE_TIMEOUT_SECONDS
            status = jobs_of(ctx).read(job_id)
            while status.get("state") not in ("done", "failed") and time.monotonic() < deadline:
                time.sleep(JOB_POLL_SECONDS)
                status = jobs_of(ctx).read(job_id)
            if status.get("state") != "done":
                message = status.get("message") or "The merge is still running; look in the run folder later."
                yield f'<div class="run-failure" data-field="merge-state" data-state="failed">{esc(message)}</div>'
                return
            result = status["result"]
            yield (f'<div data-field="merge-state" data-state="done">Merged {esc(result["adapter"])} into '
                   f'<code>{esc(result["out"])}</code> ({result["bytes"] / 2**20:.1f} MiB, {esc(result["dtype"])}): '
                   "a full checkpoint that <code>AutoModelForImageTextToText.from_pretrained</code> and "
                   "<code>AutoProcessor.from_pretrained</code> load; MERGED.json gives the image settings to serve "
                   "it at.</div>")

        self.zip_button.click(download_zip, [self.selected, self.export_checkpoint],
                              [self.zip_file, self.export_message])
        self.merge_button.click(merge, [self.selected, self.export_checkpoint, self.merge_dtype],
                                self.export_message)
