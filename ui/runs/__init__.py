"""Runs: configure a LoRA run in the seed's schema, check what it attaches to, launch it in the background, watch
it, compare 2–4 runs, try adapters in the playground and ship them (adapter zip, merge). All logic lives in
lora_core; this package wires components and formats what it returns, one module per concern:

form (the launch bar, config fields, YAML) · live (the live list, the selected run, export) · compare ·
playground · access (logins, view-only, server paths) · views (HTML) · api (HTTP endpoints) · stored (demo runs).
"""
from __future__ import annotations

import time

import gradio as gr

from ui.runs.access import (  # noqa: F401  (the tab's public helpers, imported by tests and benchmarks)
    LaunchRefused,
    ctx_path_allowed,
    launch_checked,
    launch_refusal,
    model_path_problem,
    path_problems,
    view_only,
)
from ui.runs.api import api_functions
from ui.runs.compare import REPLAY_SECONDS, CompareView, compare_curves
from ui.runs.form import FormView, config_from_form, form_values  # noqa: F401
from ui.runs.live import LiveView, run_choices, run_detail
from ui.runs.views import CSS, log_html, runs_table, svg_plot  # noqa: F401

REFRESH_SECONDS = 2.0


def intro(ctx, locked: bool) -> str:
    return ("Configure a LoRA run in the seed's YAML schema, check which modules it really attaches to, launch it "
            "in the background, watch and compare runs, and try their adapters on a screenshot." + (
                " **Demo mode:** the embedded tiny model only, at most a few dozen steps, on the demo trajectories; "
                "the stored demo runs can be replayed, compared and tried." if ctx.demo_mode else "") + (
                " **View-only:** this app is served beyond this machine without a login, so runs can be watched "
                "and compared but not launched, stopped, killed, evaluated or merged, and no field reads a path on "
                "the server. Start it with `--auth USER:PASSWORD` to lift this." if locked else ""))


def build(ctx, blocks: gr.Blocks) -> None:
    """The Runs tab: the launch bar and the live list first, then the selected run, compare and playground."""
    from ui.runs import playground

    if ctx.demo_mode:
        from ui.runs.stored import install_stored_runs

        install_stored_runs(ctx.workspace)
    locked = view_only(ctx)
    choices_state = gr.State([])
    replay_state = gr.State(None)
    gr.Markdown(intro(ctx, locked), elem_id="runs-intro", elem_classes="runs-note")
    form = FormView(ctx, locked)
    gr.Markdown("### Runs (live)")
    runs_view = gr.HTML(elem_id="runs-list")
    with gr.Tabs(elem_id="runs-sections"):
        with gr.Tab("Selected run", id="runs-selected-tab"):
            live = LiveView(ctx, locked, runs_view)
        with gr.Tab("Compare 2–4 runs", id="runs-compare-tab"):
            compare = CompareView(replay_state)
        with gr.Tab("Playground", id="runs-playground-tab"):
            play_sources, _ = playground.build(ctx)
    timer = gr.Timer(REFRESH_SECONDS)
    form.wire(ctx, live.selected)
    live.wire(ctx, replay_state)
    compare.wire(ctx)

    def list_html(summaries):
        return runs_table(summaries, metrics_for=lambda run_id: ctx.runs.folder(run_id).read_metrics())

    def refresh(selected_id, compare_ids, known_choices, replay_started):
        choices = run_choices(ctx)
        summaries = ctx.runs.list_runs()
        changed = choices != known_choices
        select_update = gr.update(choices=choices) if changed else gr.skip()
        compare_update = gr.update(choices=[(c[0].rsplit(" · ", 1)[0], c[1]) for c in choices]) if changed \
            else gr.skip()
        play_updates = [gr.update(choices=playground.source_choices(ctx, index == 1)) if changed else gr.skip()
                        for index in range(len(play_sources))]
        # The replay state is written back only to end it: a tick still running when Replay is clicked must not
        # put back the None it read.
        replay_update = gr.skip()
        if replay_started is not None and time.time() - replay_started > REPLAY_SECONDS + REFRESH_SECONDS:
            replay_started = replay_update = None
        detail = run_detail(ctx, selected_id, replay_started)
        running = {s.run_id for s in summaries if s.running}
        if compare_ids and (running & set(compare_ids) or replay_started is not None):
            curves = compare_curves(ctx, compare_ids, replay_started)
        else:
            curves = gr.skip()
        return (list_html(summaries), select_update, compare_update, *play_updates, choices, *detail, curves,
                replay_update)

    timer.tick(refresh, [live.selected, compare.choice, choices_state, replay_state],
               [live.runs_view, live.selected, compare.choice, *play_sources, choices_state, *live.detail_outputs,
                compare.curve_view, replay_state], show_progress="hidden")

    def initial_view():
        choices = run_choices(ctx)
        latest = choices[0][1] if choices else None
        return (list_html(ctx.runs.list_runs()), gr.update(choices=choices, value=latest),
                gr.update(choices=[(c[0].rsplit(" · ", 1)[0], c[1]) for c in choices]), choices,
                *run_detail(ctx, latest))

    blocks.load(initial_view, None, [live.runs_view, live.selected, compare.choice, choices_state,
                                     *live.detail_outputs])
    for function in api_functions(ctx):
        gr.api(function, api_name=function.__name__)
