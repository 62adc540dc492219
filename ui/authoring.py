"""Authoring: click on screenshots to write GUI-agent steps and error → correction data, then export.

Wiring only: the logic lives in authoring/ (session, store, validate, export, importer); the step view's
components are drawn by ui/authoring_view.py, the zoomable screenshot by ui/canvas.py.
"""
from __future__ import annotations

import hashlib
import html
import shutil
import sqlite3
import tempfile
import time
import zipfile
from contextlib import nullcontext
from pathlib import Path

import gradio as gr

from authoring.export import FORMATS, ExportOptions, ExportRefused, export_store
from authoring.importer import IMPORT_FORMATS, ImportOptions, ImportRefused, import_source
from authoring.model import ACTION_KINDS, STATUSES, SWIPE_DIRECTIONS, SYSTEM_BUTTONS
from authoring.propose import PROPOSALS
from authoring.session import STEP, AnnotatorSession
from authoring.validate import validate_store
from lora_core.data.archives import ArchiveRefused, extract_archive
from lora_core.data.images import ImageInputError, open_screenshot
from ui.authoring_view import TOOLS, VIEW_FIELDS, notice_html, panel, render_view
from ui.canvas import CANVAS_CSS, STATIC, FileURLs, SessionMemory, canvas_value, click_box, click_point, zoom_canvas
from ui.review import CSS as REVIEW_CSS, build_review_section

COORDS = ("norm1000", "norm999", "abs-original", "abs-resized")
CLICK_IT_MYSELF = "I will click it myself"
# Edits of the step view skip gradio's queue: each queue message (estimation, start, log, end) makes the page
# refresh every component's loading state, tens of ms each on 2 cores. They still run one at a time per browser
# session (a lock in SessionMemory), in the order they reach the server; what they say goes to the notice
# panel, since gr.Info needs the queue. No progress overlay: the canvas and the panels show what changed.
SERIAL = {"queue": False, "show_progress": "hidden"}
NAME_KEY = "lora-workbench-annotator"  # the annotator's name, remembered by the browser


def token_js(button_id: str) -> str:
    """The js= of Save and Mark wrong: the last input becomes static/authoring.js's token of the button's click."""
    return (f"(...values) => {{ values[values.length - 1] = (window.authoringTokens || {{}})['{button_id}'] || ''; "
            "return values; }")


SHORTCUTS = [("N", "next step", "auth-next"), ("P", "previous step", "auth-prev"), ("S", "save (mark done)", "auth-save"),
             ("W", "mark wrong", "auth-wrong"), ("U", "undo", "auth-undo"), ("R", "redo", "auth-redo")]

# Shortcuts: plain keys outside text fields, Alt+key anywhere. Buttons are clicked by their elem_id.
JS = """
() => {
  const keys = {%s};
  document.addEventListener('keydown', (event) => {
    const root = document.querySelector('#auth-root');
    if (!root || root.offsetParent === null || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    const typing = target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable);
    if (typing && !event.altKey) return;
    const id = keys[event.key.toLowerCase()] || (event.altKey && keys[event.code.replace('Key', '').toLowerCase()]);
    if (!id) return;
    const button = document.getElementById(id);
    if (!button) return;
    event.preventDefault();
    if (typing) target.blur();  // saves the field being typed in first
    setTimeout(() => button.click(), typing ? 150 : 0);
  });
  (%s)();
}
""" % (", ".join(f"'{key.lower()}': '{elem_id}'" for key, _, elem_id in SHORTCUTS),
       (STATIC / "authoring.js").read_text().strip().rstrip(";"))

CSS = """
#auth-coord { font-family: monospace; font-size: 0.95em; }
.auth-problems li { color: #b00; }
.auth-ok { color: #080; font-weight: bold; }
.auth-share-low { color: #c60; font-weight: bold; }
.auth-share-ok { color: #080; font-weight: bold; }
.auth-table-wrap { max-width: 100%; overflow-x: hidden; }
.auth-progress { border-collapse: collapse; font-size: 0.85em; width: 100%; table-layout: fixed; }
.auth-progress td, .auth-progress th { border: 1px solid var(--border-color-primary); padding: 2px 5px;
                                       overflow-wrap: anywhere; vertical-align: top; }
.auth-progress .auth-time { white-space: nowrap; }
.auth-states tr.auth-here td { background: var(--color-accent-soft); font-weight: bold; }
.auth-states td[data-field="status"] { white-space: nowrap; }
.auth-bar { background: #ddd; height: 8px; width: 3.2em; display: inline-block; }
.auth-bar > span { background: #2a7; height: 8px; display: block; }
.auth-states tr[data-pending] td { font-style: italic; opacity: 0.75; }
.auth-history { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 6px; max-height: 260px;
                overflow-y: auto; }
.auth-history figure { margin: 0; min-width: 0; }
.auth-history img { width: 100%; height: auto; display: block; border: 1px solid var(--border-color-primary); }
.auth-history figcaption { font-size: 0.8em; overflow-wrap: anywhere; }
#auth-notice ul { margin: 4px 0; padding-left: 1.2em; }
#auth-notice .auth-warning { color: #b00; font-weight: bold; }
.auth-keys kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: 0.85em; }
#auth-after-upload { min-height: 0; }
#auth-recovery-buttons { flex-wrap: wrap; gap: 6px; margin-top: 6px; position: relative; z-index: 1; }
/* toasts at the bottom left, narrow, so they never cover the editors on the right */
.toast-wrap { top: auto !important; bottom: 12px !important; left: 12px !important; right: auto !important;
              align-items: flex-start !important; width: min(340px, 28vw) !important; max-height: 45vh; overflow: hidden; }
""" + CANVAS_CSS + REVIEW_CSS


def render_cache(ctx) -> Path:
    """Thumbnails and the session's pictures live in the system temp folder."""
    digest = hashlib.sha1(str(ctx.workspace).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / "lora-authoring" / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shortcut_legend() -> str:
    keys = " · ".join(f"<kbd>{key}</kbd> {what}" for key, what, _ in SHORTCUTS)
    return (f'<div class="auth-keys" id="auth-shortcuts"><b>Shortcuts</b> (outside text fields; hold <kbd>Alt</kbd> '
            f"inside them): {keys} · on the screenshot: <kbd>+</kbd> <kbd>−</kbd> zoom, <kbd>0</kbd> fit, "
            f"<kbd>1</kbd> 1:1, wheel zoom, drag to pan</div>")


def build(ctx, blocks: gr.Blocks) -> None:
    """The Authoring tab."""
    cache = render_cache(ctx)
    memory = SessionMemory()
    state = gr.State(None)
    shown = gr.Textbox(visible=False, elem_id="auth-shown")  # which record the editors show (see showing())
    token = gr.Textbox(visible=False, elem_id="auth-token")  # which click a Save or Mark wrong answers

    with gr.Column(elem_id="auth-root"):
        gr.Markdown("Click on the screenshot to set the action's point (two clicks for swipe and drag), or switch "
                    "the clicks to the target box. Every edit is saved at once. Mark a step wrong to author an "
                    "error → correction pair.")
        gr.HTML(shortcut_legend())
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                annotator = gr.Textbox(label="Annotator", placeholder="your name", elem_id="auth-annotator")
                trajectory = gr.Dropdown([], label="Trajectory", elem_id="auth-trajectory")
                # display-only parts: filled from the canvas's value (see ui/authoring_view.py)
                gr.HTML(panel("progress"), elem_id="auth-progress-box")
                gr.HTML(panel("share"), elem_id="auth-share-box")
                gr.Markdown("**Steps and their state**")
                gr.HTML(panel("states"), elem_id="auth-states-box")
                gr.Markdown("**Previous steps**")
                gr.HTML(panel("history"), elem_id="auth-history")
            with gr.Column(scale=2, min_width=420):
                gr.HTML(panel("header"), elem_id="auth-header")
                editing = gr.Radio([STEP], value=STEP, label="Clicks and editors change", elem_id="auth-editing")
                canvas = zoom_canvas("auth", "min(720px, calc(100vh - 120px))", "auth-screenshot")
                gr.HTML(panel("coordinate"), elem_id="auth-coord")
                tool = gr.Radio(TOOLS, value="point", label="Clicks on the screenshot set", elem_id="auth-tool")
                with gr.Row():
                    target_element = gr.Dropdown([], label="Target: a known element", elem_id="auth-target-element")
                    target_box = gr.Textbox(label="Target box x1, y1, x2, y2 (px)", placeholder="e.g. 40, 610, 1040, 760",
                                            elem_id="auth-target-box")
                    clear_box = gr.Button("Clear box", size="sm", elem_id="auth-clear-box", scale=0, min_width=90)
                with gr.Row():
                    previous = gr.Button("◀ Previous", elem_id="auth-prev", size="sm")
                    following = gr.Button("Next ▶", elem_id="auth-next", size="sm")
                    save = gr.Button("Save (done)", variant="primary", elem_id="auth-save", size="sm")
                    undo = gr.Button("Undo", elem_id="auth-undo", size="sm")
                    redo = gr.Button("Redo", elem_id="auth-redo", size="sm")
                gr.HTML(panel("notice"), elem_id="auth-notice")
            with gr.Column(scale=2, min_width=360):
                kind = gr.Dropdown(list(ACTION_KINDS), label="Action", elem_id="auth-kind")
                text = gr.Textbox(label="Text (type / open / answer)", elem_id="auth-text")
                with gr.Row():
                    button = gr.Dropdown(list(SYSTEM_BUTTONS), label="Button", elem_id="auth-button")
                    direction = gr.Dropdown(list(SWIPE_DIRECTIONS), label="Swipe direction", elem_id="auth-direction")
                    finish = gr.Dropdown(["success", "fail"], label="Terminate status", elem_id="auth-finish")
                thinking = gr.Textbox(label="Thinking", lines=5, elem_id="auth-thinking")
                status = gr.Dropdown(list(STATUSES), label="Status", elem_id="auth-status")
                gr.HTML(panel("problems"), elem_id="auth-problems-box")
                with gr.Group():
                    gr.Markdown("**Error → correction**")
                    with gr.Row():
                        proposal = gr.Dropdown([CLICK_IT_MYSELF, *PROPOSALS], value="neighbour",
                                               label="Wrong action", elem_id="auth-proposal")
                        wrong = gr.Button("Mark wrong", variant="stop", elem_id="auth-wrong")
                    correction = gr.Dropdown([], label="Correction of this step", elem_id="auth-correction")
                    after = gr.Dropdown([], label="Screenshot after the error (recovery 1)", elem_id="auth-after")
                    after_upload = gr.Image(label="…or upload or paste it", sources=["upload", "clipboard"],
                                            type="filepath", height=150, elem_id="auth-after-upload")
                with gr.Row(elem_id="auth-recovery-buttons"):
                    add_step = gr.Button("Add recovery step", size="sm", elem_id="auth-add-recovery")
                    drop_step = gr.Button("Remove last recovery step", size="sm", elem_id="auth-drop-recovery")
                    delete = gr.Button("Delete correction", size="sm", elem_id="auth-delete-correction")
        with gr.Accordion("Validate and export the dataset", open=False, elem_id="auth-export-box"):
            with gr.Row():
                export_format = gr.Dropdown(list(FORMATS), value="mai-ui", label="Format", elem_id="auth-export-format")
                export_coords = gr.Dropdown(list(COORDS), value="norm1000", label="Coordinates", elem_id="auth-export-coords")
                export_max_dim = gr.Number(0, precision=0, label="max_dim (0: none; abs-resized needs it)")
                max_images = gr.Number(1, precision=0, label="Screenshots per sample (K)")
                val_ratio = gr.Number(0.2, label="Validation share of trajectories")
                seed = gr.Number(42, precision=0, label="Split seed")
            with gr.Row():
                validate_button = gr.Button("Validate dataset", elem_id="auth-validate")
                export_button = gr.Button("Export", variant="primary", elem_id="auth-export")
            dataset_report = gr.HTML(elem_id="auth-dataset-report")
            export_summary = gr.Markdown(elem_id="auth-export-summary")
            export_file = gr.File(label="Download the export (zip)", elem_id="auth-export-file")
        with gr.Accordion("Import trajectories", open=False):
            gr.Markdown("Upload a .zip of a folder (screenshots plus trajectories JSON/JSONL or samples), or a single "
                        "JSON/JSONL. Coordinates are converted from the convention you state to screenshot pixels.")
            with gr.Row():
                import_file = gr.File(label="Source", file_types=[".zip", ".json", ".jsonl"], type="filepath")
                import_format = gr.Dropdown(list(IMPORT_FORMATS), value="auto", label="Format")
                import_coords = gr.Dropdown(list(COORDS), value="norm1000", label="Source coordinates")
                import_max_dim = gr.Number(0, precision=0, label="max_dim of abs-resized source")
            import_button = gr.Button("Import (all or nothing)")
            import_summary = gr.Markdown()
        team = build_review_section(ctx, annotator, trajectory)


    view_outputs = [shown, trajectory, editing, canvas, kind, text, button, direction, finish, thinking, status,
                    correction, after, target_element, target_box]
    assert len(view_outputs) == len(VIEW_FIELDS)
    urls = FileURLs(canvas)

    def one_at_a_time(session: AnnotatorSession | None):
        return nullcontext() if session is None else memory.lock(session.session_id)

    def render(session: AnnotatorSession | None, sent_anyway=(), notes=(), warnings=(), answered=""):
        """The view; what the browser already shows is not sent again, except `sent_anyway` (the edited field)."""
        if session is None or session.trajectory_id is None:
            values = render_view(ctx.store, cache, session, len(view_outputs))
            if warnings or answered:  # nothing to show but the sentence
                values[VIEW_FIELDS.index("canvas")] = canvas_value(
                    "auth", None, 1, 1, message=" ".join(warnings), answered=answered,
                    panels={"auth-notice": notice_html(notes, warnings)})
            return values
        tool_now = memory.of(session.session_id).get("tool", "point")
        values = render_view(ctx.store, cache, session, len(view_outputs), urls, memory, tool_now, notes, warnings,
                             answered)
        return [value if name in sent_anyway or memory.changed(session.session_id, f"sent:{name}", repr(value))
                else gr.update() for name, value in zip(VIEW_FIELDS, values)]

    def guarded(work, edits=(), answers=False):
        """Run an edit, one at a time per browser session; a user-caused error becomes a warning; the view is
        redrawn from the store with what the edit said. `edits`: the fields the user changed, always sent back (a
        refused edit shows the stored value again). `answers`: the last input is static/authoring.js's token of
        the click, echoed in the canvas's value so the page can settle the result it showed ahead."""
        def handler(session, *args):
            token = ""
            if answers:
                *args, token = args
            with one_at_a_time(session):
                if session is None or session.trajectory_id is None:
                    return [session, *render(session, warnings=["Pick a trajectory first."], answered=token)]
                notes, warnings = [], []
                try:
                    result = work(session, *args)
                    if isinstance(result, tuple):
                        notes, warnings = list(result[0]), list(result[1])
                    else:
                        warnings = list(result or ())
                except (ValueError, LookupError, ImageInputError) as error:
                    warnings = [str(error)]
                except (sqlite3.Error, OSError) as error:  # nothing saved is lost: the edit was one transaction
                    warnings = [f"The edit could not be saved ({error}); it was not applied. Try again in a moment."]
                return [session, *render(session, edits, notes, warnings, token)]
        return handler

    def redraw(session, *_):
        with one_at_a_time(session):
            return [session, *render(session)]

    def start(typed_name, request: gr.Request):
        session = AnnotatorSession(annotator=ctx.annotator_name(request, typed_name))
        memory.of(session.session_id).clear()
        store = ctx.store
        trajectories = store.trajectories()
        if trajectories:
            session.open(store, trajectories[0].id)
        name_update = gr.update(value=session.annotator, interactive=not getattr(request, "username", None))
        return [session, name_update, *render(session)]

    def rename(session, typed_name, request: gr.Request):
        if session is not None:
            session.annotator = ctx.annotator_name(request, typed_name)
        return session

    def on_canvas(session, evt: gr.EventData):
        data = evt._data if isinstance(evt._data, dict) else {}

        def work(s):
            remembered = memory.of(s.session_id)
            try:
                remembered["seq"] = max(int(data.get("seq") or 0), remembered.get("seq", 0))
            except (TypeError, ValueError):
                pass
            key = data.get("key") if isinstance(data.get("key"), str) and data.get("key") else None
            with s.showing(key):  # the click lands on what the canvas showed, even if the view moved on
                if data.get("kind") == "box":
                    return s.set_target_box(ctx.store, click_box(data))
                return s.click(ctx.store, *click_point(data))
        return guarded(work)(session)

    def choose_tool(session, value):
        memory.of(session.session_id)["tool"] = "box" if value == "box" else "point"

    def set_field(name):
        def work(session, value):
            if name == "kind":
                return session.set_kind(ctx.store, value)
            if name == "status":  # the status of the part being edited
                return session.set_status(ctx.store, value)
            if name == "status_of_terminate":
                return session.set_fields(ctx.store, status=value)
            return session.set_fields(ctx.store, **{name: value})
        return work

    def type_box(session, value, key):
        value = (value or "").strip()
        if value == memory.of(session.session_id).get("box_text", ""):
            return []  # unchanged: a blur saves nothing
        with session.showing(key):
            return session.clear_target(ctx.store) if not value else session.set_target_box(ctx.store, value)

    def mark_wrong(session, proposal_value):
        return session.mark_wrong(ctx.store, None if proposal_value == CLICK_IT_MYSELF else proposal_value)

    def upload_after(session, path):
        if not path:
            return []
        image = open_screenshot(Path(path))  # refuses damaged, forged and oversized images with a sentence
        stored = ctx.store.add_image_file(Path(path), *image.size)
        return session.set_recovery_image(ctx.store, stored)

    session_and_view = [state, *view_outputs]
    team.on_open(guarded(lambda s, trajectory_id: s.open(ctx.store, trajectory_id)), [state], session_and_view, **SERIAL)
    team.on_change(redraw, [state], session_and_view, **SERIAL)
    blocks.load(start, [annotator], [state, annotator, *view_outputs],
                js=f"(name) => [localStorage.getItem('{NAME_KEY}') || name || '']")
    annotator.blur(rename, [state, annotator], state).then(
        None, [annotator], None, js=f"(name) => {{ localStorage.setItem('{NAME_KEY}', name || ''); }}")
    trajectory.input(guarded(lambda s, value: s.open(ctx.store, value), ("trajectory",)), [state, trajectory],
                     session_and_view, **SERIAL)
    canvas.click(on_canvas, [state], session_and_view, trigger_mode="multiple", **SERIAL)  # no click is dropped
    tool.input(guarded(choose_tool), [state, tool], session_and_view, **SERIAL)
    previous.click(guarded(lambda s: s.move(ctx.store, -1)), [state], session_and_view, **SERIAL)
    following.click(guarded(lambda s: s.move(ctx.store, +1)), [state], session_and_view, **SERIAL)
    save.click(guarded(lambda s, t, th, key: s.save_done(ctx.store, t, th, key), answers=True),
               [state, text, thinking, shown, token], session_and_view, js=token_js("auth-save"), **SERIAL)
    undo.click(guarded(lambda s: s.undo(ctx.store)), [state], session_and_view, **SERIAL)
    redo.click(guarded(lambda s: s.undo(ctx.store, redo=True)), [state], session_and_view, **SERIAL)
    editing.input(guarded(lambda s, value: s.choose_editing(value), ("editing",)), [state, editing], session_and_view,
                  **SERIAL)
    for component, name in ((kind, "kind"), (button, "button"), (direction, "direction"),
                            (finish, "status_of_terminate"), (status, "status")):
        component.input(guarded(set_field(name), edits=(name if name != "status_of_terminate" else "finish",)),
                        [state, component], session_and_view, **SERIAL)

    def typed(name):
        def work(session, value, key):
            with session.showing(key):
                return session.set_fields(ctx.store, **{name: value})
        return work

    for component, name in ((text, "text"), (thinking, "thinking")):
        component.blur(guarded(typed(name), (name,)), [state, component, shown], session_and_view, **SERIAL)
        if name == "text":
            component.submit(guarded(typed(name), (name,)), [state, component, shown], session_and_view, **SERIAL)
    for event in (target_box.submit, target_box.blur):
        event(guarded(type_box, ("target_box",)), [state, target_box, shown], session_and_view, **SERIAL)
    target_element.input(guarded(lambda s, label: s.pick_target_element(ctx.store, label), ("target_element",)),
                         [state, target_element], session_and_view, **SERIAL)
    clear_box.click(guarded(lambda s: s.clear_target(ctx.store)), [state], session_and_view, **SERIAL)
    wrong.click(guarded(mark_wrong, answers=True), [state, proposal, token], session_and_view,
                js=token_js("auth-wrong"), **SERIAL)
    correction.input(guarded(lambda s, value: s.choose_correction(ctx.store, value), ("correction",)),
                     [state, correction], session_and_view, **SERIAL)
    after.input(guarded(lambda s, value: s.set_recovery_image(ctx.store, value), ("after",)), [state, after],
                session_and_view, **SERIAL)
    after_upload.upload(guarded(upload_after), [state, after_upload], session_and_view, **SERIAL).then(
        lambda: None, None, after_upload)
    add_step.click(guarded(lambda s: s.add_recovery(ctx.store)), [state], session_and_view, **SERIAL)
    drop_step.click(guarded(lambda s: s.remove_recovery(ctx.store)), [state], session_and_view, **SERIAL)
    delete.click(guarded(lambda s: s.delete_correction(ctx.store)), [state], session_and_view, **SERIAL)

    def set_export_convention(session, coords, max_dim):
        if session is not None:
            session.export_coords = coords
            session.export_max_dim = int(max_dim) if max_dim and max_dim > 0 else None
            session.encoder = ctx.encoder() if coords == "abs-resized" else None
        return session

    for component in (export_coords, export_max_dim):
        component.change(set_export_convention, [state, export_coords, export_max_dim], state).then(
            redraw, [state], session_and_view, **SERIAL)

    def validate_dataset(progress=gr.Progress()):
        found = validate_store(ctx.store, lambda done, total: progress((done, total), desc="validating"))
        if not found:
            return '<div class="auth-ok" id="auth-dataset-ok">Every record passes every check.</div>'
        items = "".join(f"<li><b>{html.escape(p.record)}</b>: {html.escape(p.message)}</li>" for p in found)
        return f'<div><b>{len(found)} problem(s)</b><ul class="auth-problems">{items}</ul></div>'

    def export(fmt, coords, max_dim, k, ratio, split_seed, recipe=None, recipe_options=None, progress=gr.Progress()):
        max_dim = int(max_dim) if max_dim and max_dim > 0 else None
        if coords == "abs-resized" and not max_dim:
            gr.Warning("abs-resized needs max_dim: the longest side the model's images are resized to.")
            return gr.update(), None
        try:
            from ui.recipe import recipe_encoder

            working = recipe_encoder(ctx, recipe, recipe_options)  # the recipe bar's: peer files and notes follow it
            options = ExportOptions(coords=coords, max_dim=max_dim, max_images=int(k or 1), val_ratio=float(ratio or 0),
                                    seed=int(split_seed or 0), encoder=working)
            out = ctx.workspace / "authoring" / "exports" / f"{time.strftime('%Y%m%d-%H%M%S')}-{fmt}-{time.time_ns() % 10**6}"
            summary = export_store(ctx.store, out, fmt, options,
                                   lambda done, total, what: progress((done, total), desc=f"writing {what}"))
        except (ExportRefused, ValueError) as error:
            gr.Warning(str(error))
            return f"Export refused: {html.escape(str(error))}", None
        archive = shutil.make_archive(str(render_cache(ctx) / out.name), "zip", out)
        files = ", ".join(f"`{name}`" for name in summary["files"].values())
        text = (f"Exported **{summary['samples']}** samples ({summary['train']} train, {summary['val']} validation; "
                f"{summary['corrections']} corrections) in **{fmt}**, coordinates {coords}, to "
                f"<code id='auth-export-path'>{html.escape(summary['out'])}</code>: {files}.")
        for note in summary["notes"]:
            text += f"  \n*{html.escape(note)}*"
        return text, archive

    def run_import(session, path, fmt, coords, max_dim, progress=gr.Progress()):
        if not path:
            gr.Warning("Choose a .zip, .json or .jsonl file to import.")
            return [session, gr.update(), *render(session)]
        max_dim = int(max_dim) if max_dim and max_dim > 0 else None
        if coords == "abs-resized" and not max_dim:
            gr.Warning("abs-resized needs max_dim: the longest side the screenshots were resized to.")
            return [session, gr.update(), *render(session)]
        workdir = Path(tempfile.mkdtemp(prefix="authoring-import-"))
        try:
            source = unpack(Path(path), workdir)
            summary = import_source(ctx.store, source, ImportOptions(fmt, coords, max_dim, encoder=ctx.encoder()),
                                    annotator=session.annotator if session else "import",
                                    progress=lambda d, t, w: progress((d, t), desc=f"checking {w}"))
        except (ImportRefused, ValueError, zipfile.BadZipFile) as error:
            gr.Warning(f"Nothing was imported: {error}")
            return [session, f"Nothing was imported: {html.escape(str(error))}", *render(session)]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if session is not None and summary["ids"]:
            session.open(ctx.store, summary["ids"][0])
        text = (f"Imported {summary['trajectories']} trajectories, {summary['steps']} steps and "
                f"{summary['corrections']} corrections ({summary['format']}, {coords} → abs-original).")
        return [session, text, *render(session)]

    validate_button.click(validate_dataset, None, dataset_report)
    export_button.click(export, [export_format, export_coords, export_max_dim, max_images, val_ratio, seed,
                                 *(ctx.recipe_bar.inputs if ctx.recipe_bar is not None else [])],
                        [export_summary, export_file])
    import_button.click(run_import, [state, import_file, import_format, import_coords, import_max_dim],
                        [state, import_summary, *view_outputs])


def unpack(path: Path, workdir: Path, **limits) -> Path:
    """A zip is checked by lora_core.data.archives (size, member count, compression ratio, zip-slip, links) and
    only then extracted; a JSON/JSONL is imported where it was uploaded. `limits`: the checker's arguments."""
    if path.suffix.lower() != ".zip":
        return path
    try:
        extract_archive(path, workdir, **limits)
    except ArchiveRefused as error:
        raise ImportRefused(str(error)) from None
    entries = [p for p in workdir.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return workdir
