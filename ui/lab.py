"""Resolution Lab: what each image setting costs in tokens and loses in detail, side by side."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gradio as gr
from gradio.data_classes import FileData

from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes import NativeRecipe, make_recipe, options_from_text
from lora_core.data.images import ImageInputError, aspect_problem, open_screenshot
from lora_core.analysis.resolution import (
    DEFAULT_MAX_LENGTH,
    TEXT_CLEAR_PX,
    TEXT_READABLE_PX,
    NamedSetting,
    analyse,
    lab_settings,
    preset_settings,
    targets_under_one_cell,
    tokens_per_setting,
)
from demo.screens import SCREENS
from ui.canvas import CANVAS_CSS, FileURLs, click_box, click_point, canvas_value, zoom_canvas
from ui.lab_view import LAB_CSS, ModelViewFiles, report_table, views_html

MAX_VIEWS = 6
DEFAULT_PRESETS = ["max520", "max768", "max1024"]
CLICK_MODES = ["element corners (2 clicks or a drag)", "click point"]
NO_ELEMENTS = "An uploaded screenshot carries no element boxes: click two corners (or drag) to mark one."
CSS = CANVAS_CSS + LAB_CSS


@dataclass
class Screenshot:
    """The Lab's per-session selection: which screenshot and what is marked on it."""

    path: str
    name: str
    width: int
    height: int
    elements: dict[str, dict] = field(default_factory=dict)  # demo elements by label
    box: tuple | None = None
    text_height: float | None = None
    corner: tuple | None = None
    point: tuple | None = None
    seq: int = 0  # the last canvas click applied, echoed to the canvas


@lru_cache(maxsize=8)
def decoded(path: str, mtime: float):
    return open_screenshot(Path(path))


def screenshot_image(shot: Screenshot):
    return decoded(shot.path, Path(shot.path).stat().st_mtime)


@lru_cache(maxsize=32)
def cached_model_view(encoder, path: str, mtime: float, geom):
    return encoder.model_view(decoded(path, mtime), geom)


def model_view(encoder, shot: Screenshot, geom):
    """The image processor's own pixels for this screenshot and setting (remembered across redraws)."""
    return cached_model_view(encoder, shot.path, Path(shot.path).stat().st_mtime, geom)


def demo_screenshot(ctx, name: str) -> Screenshot:
    screen = ctx.demo.screen(name)
    elements = {
        e.label: {"box": e.box, "kind": e.kind, "text_height": e.text_height} for e in screen.elements
    }
    return Screenshot(str(screen.path), f"demo: {name}", screen.width, screen.height, elements)


def uploaded_screenshot(path: str, model_settings: ImageSettings) -> tuple[Screenshot, list[str]]:
    """Validate an upload; returns the screenshot and notes worth telling the user."""
    image = open_screenshot(Path(path))  # raises ImageInputError with a sentence for the user
    width, height = image.size
    try:
        geom = NativeRecipe(model_settings).geometry(width, height)
    except ValueError as error:  # open_screenshot refuses over 200:1 already; this is the processor's own word
        raise ImageInputError(aspect_problem(width, height, Path(path).name) or f"{Path(path).name}: {error}") from None
    notes = []
    if width * height < model_settings.min_pixels:
        notes.append(
            f"This image is only {width}×{height}: below the processor's minimum of {model_settings.min_pixels:,} pixels, "
            f"so it is upscaled to {geom.resized_width}×{geom.resized_height}. It is probably not a screenshot."
        )
    return Screenshot(path, Path(path).name, width, height), notes


def chosen_settings(model_settings, presets, use_custom, custom_max_dim, custom_min, custom_max,
                    recipe: str | None = None, recipe_options: str | None = None) -> list[NamedSetting]:
    chosen = [named for named in lab_settings(model_settings) if named.key in (presets or [])]
    if recipe and (recipe != "native" or recipe_options):
        chosen_recipe = make_recipe(recipe, model_settings, options_from_text(recipe, recipe_options))
        chosen.append(NamedSetting("recipe", f"your recipe: {chosen_recipe.describe()}", chosen_recipe))
    if use_custom:
        for name, value in (("max_dim", custom_max_dim), ("min_pixels", custom_min), ("max_pixels", custom_max)):
            if value is not None and value < 0:
                raise ValueError(f"Custom {name} must be a positive number of pixels, not {value:g}.")
        custom = NativeRecipe(
            model_settings,
            max_dim=int(custom_max_dim) if custom_max_dim else None,
            min_pixels=int(custom_min or model_settings.min_pixels),
            max_pixels=int(custom_max or model_settings.max_pixels),
        )
        chosen.append(NamedSetting("custom", "custom", custom))
    return chosen[:MAX_VIEWS]


EXPLANATION = f"""
<div class="lab-notes">
<b>How to read this.</b> One visual token covers a 32×32 px cell of the resized image (patch 16 × merge 2 for Qwen3-VL;
the model's own processor config decides). An element smaller than one cell is <b>lost</b>; under four cells (2×2) it is
<b>blurry</b>. Text height after resizing: ≥{TEXT_CLEAR_PX} px reads <b>clear</b>, {TEXT_READABLE_PX}–{TEXT_CLEAR_PX} px is
<b>blurry</b>, under {TEXT_READABLE_PX} px <b>unreadable</b> (the seed's §4.3.2 and §4.6 thresholds). "Click worst case" is the
error in original pixels of a point the model can only place at its token cell's centre: half a cell per axis.
Token counts are computed by transformers' own <code>smart_resize</code> and equal the processor's.
</div>
"""


def build(ctx, blocks: gr.Blocks) -> None:
    """The Resolution Lab tab."""
    demo_names = [name for name, _ in SCREENS]  # known without drawing the demo, which happens after launch
    first_demo = "files_root" if "files_root" in demo_names else demo_names[0]
    shot_state = gr.State(None)

    gr.Markdown(
        "Pick a screenshot and compare what each resolution costs in visual tokens and loses in detail. "
        "Click two corners of an element on the screenshot to measure it, or switch to *click point* to see click precision."
    )
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            demo_choice = gr.Dropdown(demo_names, value=first_demo, label="Demo screenshot", elem_id="lab-demo")
            upload = gr.File(label="…or upload your screenshot (PNG/JPEG)", file_types=["image"], type="filepath",
                             elem_id="lab-upload")
            original = zoom_canvas("lab", "min(620px, calc(100vh - 140px))", "lab-original")
            click_mode = gr.Radio(CLICK_MODES, value=CLICK_MODES[0], label="Clicks mark", elem_id="lab-click-mode")
            element_choice = gr.Dropdown([], label="…or pick a demo element", elem_id="lab-element")
            is_text = gr.Checkbox(False, label="The marked element is text (judge readability by its height)",
                                  elem_id="lab-is-text")
            clear = gr.Button("Clear marks", size="sm")
        with gr.Column(scale=3):
            with gr.Row():
                presets = gr.CheckboxGroup(
                    [(named.label, named.key) for named in lab_settings(ImageSettings())],
                    value=DEFAULT_PRESETS, label="Settings to compare", elem_id="lab-presets")
            with gr.Row():
                use_custom = gr.Checkbox(False, label="Add a custom setting", elem_id="lab-use-custom")
                custom_max_dim = gr.Number(640, label="custom max_dim (0: no pre-resize)", precision=0)
                custom_min = gr.Number(ImageSettings().min_pixels, label="custom min_pixels", precision=0)
                custom_max = gr.Number(ImageSettings().max_pixels, label="custom max_pixels", precision=0)
            with gr.Row():
                max_length = gr.Number(DEFAULT_MAX_LENGTH, label="max_length (tokens)", precision=0,
                                       elem_id="lab-max-length")
                show_patches = gr.Checkbox(True, label="16 px patch grid")
                show_tokens = gr.Checkbox(True, label="32 px token grid")
            status = gr.Markdown(elem_id="lab-status")
            table = gr.HTML(elem_id="lab-table")
            views = gr.HTML(elem_id="lab-views-box")
            gr.HTML(EXPLANATION)
    with gr.Accordion("Dataset view: visual tokens per setting over many screenshots", open=False):
        with gr.Row():
            dataset_files = gr.File(label="Screenshots (leave empty for the demo trajectories)", file_count="multiple",
                                    file_types=["image"], type="filepath")
            small_setting = gr.Dropdown(
                [(named.label, named.key) for named in lab_settings(ImageSettings())], value="max520",
                label="Setting for the small-target list")
        analyse_button = gr.Button("Analyse dataset")
        dataset_plot = gr.Plot(label="Visual tokens per image")
        dataset_table = gr.HTML()

    bar = ctx.recipe_bar
    setting_inputs = [presets, use_custom, custom_max_dim, custom_min, custom_max, max_length, show_patches, show_tokens,
                      click_mode, *(bar.inputs if bar is not None else [])]

    def refresh(shot: Screenshot | None, presets, use_custom, custom_max_dim, custom_min, custom_max, max_length,
                show_patches, show_tokens, mode, recipe=None, recipe_options=None):
        return render_lab(ctx, shot, presets, use_custom, custom_max_dim, custom_min, custom_max, max_length,
                          show_patches, show_tokens, recipe, recipe_options, urls, view_files,
                          tool="point" if mode == CLICK_MODES[1] else "box")

    outputs = [original, table, status, views]
    urls = FileURLs(original)
    view_files = ModelViewFiles(urls)

    if bar is not None:
        bar.on_change(refresh, [shot_state, *setting_inputs], outputs)

    def pick_demo(name, current=None):
        if not name:
            return current, gr.update()
        shot = demo_screenshot(ctx, name)
        return shot, gr.update(choices=sorted(shot.elements), value=None, info=None)

    def pick_upload(path, current):
        if not path:
            return current, gr.update(), gr.update()
        try:
            shot, notes = uploaded_screenshot(path, ctx.model_info().settings)
        except ImageInputError as error:
            gr.Warning(str(error))
            return current, gr.update(), gr.update()
        for note in notes:
            gr.Info(note)
        return shot, gr.update(choices=[], value=None, info=NO_ELEMENTS), gr.update(value=None)

    def on_click(shot: Screenshot | None, text_flag, evt: gr.EventData):
        """A point or a finished box from the canvas, in abs-original pixels."""
        data = evt._data if isinstance(evt._data, dict) else {}
        if shot is None:
            return shot
        try:
            shot.seq = max(shot.seq, int(data.get("seq") or 0))
        except (TypeError, ValueError):
            pass
        try:
            if data.get("kind") == "box":
                x0, y0, x1, y1 = click_box(data)
                clamp = lambda v, limit: min(max(v, 0.0), float(limit))  # noqa: E731
                box = (clamp(min(x0, x1), shot.width), clamp(min(y0, y1), shot.height),
                       clamp(max(x0, x1), shot.width), clamp(max(y0, y1), shot.height))
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    raise ValueError("The two corners must differ in both x and y; mark the opposite corner.")
                shot.box, shot.corner = box, None
                shot.text_height = (box[3] - box[1]) if text_flag else None
            else:
                x, y = click_point(data)
                shot.point = (min(max(x, 0.0), shot.width - 1.0), min(max(y, 0.0), shot.height - 1.0))
        except ValueError as error:
            gr.Warning(str(error))
        return shot

    def pick_element(shot: Screenshot | None, label):
        if shot is None or not label or label not in shot.elements:
            return shot, gr.update()
        element = shot.elements[label]
        shot.box, shot.corner = tuple(element["box"]), None
        shot.text_height = element["text_height"] if element["kind"] == "text" else None
        return shot, gr.update(value=shot.text_height is not None)

    def set_text(shot: Screenshot | None, text_flag):
        if shot is not None and shot.box:
            shot.text_height = (shot.box[3] - shot.box[1]) if text_flag else None
        return shot

    def clear_marks(shot: Screenshot | None):
        if shot is not None:
            shot.box = shot.corner = shot.point = shot.text_height = None
        return shot

    demo_choice.input(pick_demo, [demo_choice, shot_state], [shot_state, element_choice]).then(
        refresh, [shot_state, *setting_inputs], outputs)
    upload.upload(pick_upload, [upload, shot_state], [shot_state, element_choice, demo_choice]).then(
        refresh, [shot_state, *setting_inputs], outputs)
    original.click(on_click, [shot_state, is_text], shot_state, trigger_mode="multiple", show_progress="hidden").then(
        refresh, [shot_state, *setting_inputs], outputs, show_progress="hidden")  # the canvas shows the mark at once

    element_choice.input(pick_element, [shot_state, element_choice], [shot_state, is_text]).then(
        refresh, [shot_state, *setting_inputs], outputs)
    is_text.input(set_text, [shot_state, is_text], shot_state).then(refresh, [shot_state, *setting_inputs], outputs)
    clear.click(clear_marks, shot_state, shot_state).then(refresh, [shot_state, *setting_inputs], outputs)
    for component in setting_inputs:
        component.change(refresh, [shot_state, *setting_inputs], outputs)
    analyse_button.click(lambda files, key: analyse_dataset(ctx, files, key), [dataset_files, small_setting],
                         [dataset_plot, dataset_table])
    gr.api(report_api(ctx), api_name="lab_report")
    blocks.load(pick_demo, demo_choice, [shot_state, element_choice]).then(
        refresh, [shot_state, *setting_inputs], outputs)


def report_api(ctx):
    def lab_report(screenshot: FileData, presets: list[str], max_length: int = DEFAULT_MAX_LENGTH) -> dict:
        """Resized size, grid, visual tokens and share of max_length of a screenshot at each preset
        (max520, max768, max1024, official, model)."""
        path = screenshot["path"] if isinstance(screenshot, dict) else str(screenshot)
        model_settings = ctx.model_info().settings
        try:
            shot, notes = uploaded_screenshot(path, model_settings)
        except ImageInputError as error:
            raise gr.Error(str(error)) from None
        unknown = set(presets) - {named.key for named in lab_settings(model_settings)}
        if unknown:
            raise gr.Error(f"Unknown preset(s) {sorted(unknown)}; use max520, max768, max1024, official, model, "
                           "llamafactory or ms-swift.")
        settings = chosen_settings(model_settings, presets, False, None, None, None)
        reports = analyse(shot.width, shot.height, settings, max_length)
        return {
            "width": shot.width,
            "height": shot.height,
            "notes": notes,
            "settings": [
                {"key": r.setting.key, "label": r.setting.label, **r.geometry.as_dict(),
                 "share_of_max_length": r.share_of_max_length}
                if r.geometry is not None else  # this setting's pre-resize pushes the aspect ratio past 200
                {"key": r.setting.key, "label": r.setting.label, "error": r.error}
                for r in reports
            ],
        }

    return lab_report


def render_lab(ctx, shot, presets, use_custom, custom_max_dim, custom_min, custom_max, max_length, show_patches,
               show_tokens, recipe=None, recipe_options=None, urls=None, view_files=None, tool="box"):
    """Everything the Lab shows for one screenshot: the canvas, numbers table, status, model views."""
    if shot is None:
        return gr.update(), "", "Pick a demo screenshot or upload one.", ""
    try:
        encoder = ctx.encoder()
        settings = chosen_settings(encoder.checkpoint_settings, presets, use_custom, custom_max_dim, custom_min,
                                   custom_max, recipe, recipe_options)
    except (RuntimeError, ValueError) as error:
        return gr.update(), "", f"⚠️ {error}", ""
    canvas = canvas_value("lab", urls.url(shot.path) if urls else shot.path, shot.width, shot.height,
                          marks=[{"role": "point", "x": shot.point[0], "y": shot.point[1]}] if shot.point else [],
                          box=shot.box, box_role="box", tool=tool, role="point", key=shot.path, seq=shot.seq)
    if not settings:
        return canvas, "", "Tick at least one setting to compare.", ""
    length = int(max_length) if max_length and max_length > 0 else DEFAULT_MAX_LENGTH
    reports = analyse(shot.width, shot.height, settings, length, shot.box, shot.text_height, shot.point)
    status = f"**{html.escape(shot.name)}** — {shot.width}×{shot.height} px"
    if shot.box:
        x0, y0, x1, y1 = shot.box
        status += f" · element {x1 - x0:.0f}×{y1 - y0:.0f} px at ({x0:.0f}, {y0:.0f})"
    if shot.point:
        status += f" · click point ({shot.point[0]:.0f}, {shot.point[1]:.0f})"
    files = view_files or ModelViewFiles(FileURLs(gr.HTML(render=False)))
    views = views_html(encoder, shot, reports, files, model_view, show_patches, show_tokens)
    return canvas, report_table(shot, reports, length), status, views


def analyse_dataset(ctx, files, small_key):
    """Token distribution per setting over the demo trajectories or uploaded screenshots."""
    model_settings = ctx.model_info().settings
    settings = preset_settings(model_settings)
    sizes, targets, problems = [], [], []
    if files:
        for path in files:
            try:
                sizes.append(open_screenshot(Path(path)).size)  # the single view's checks and sentences
            except ImageInputError as error:
                problems.append(str(error))
    else:
        for trajectory in ctx.demo.trajectories:
            for number, step in enumerate(trajectory.steps, start=1):
                screen = ctx.demo.screen(step.screenshot)
                sizes.append((screen.width, screen.height))
                if step.target is not None:
                    targets.append((f"{trajectory.id} step {number}", step.target.label,
                                    (screen.width, screen.height), step.target.box))
    if not sizes:
        gr.Warning("None of the files is a usable image. " + " ".join(problems[:3]))
        return None, ""
    counts = tokens_per_setting(sizes, settings)
    figure = token_distribution_plot(counts, settings)
    small_setting = next(named for named in settings if named.key == small_key)
    rows = "".join(
        f"<tr><td>{html.escape(named.label)}</td><td>{min(counts[named.key], default=0):,}</td>"
        f"<td>{sorted(counts[named.key])[len(counts[named.key]) // 2] if counts[named.key] else 0:,}</td>"
        f"<td>{max(counts[named.key], default=0):,}</td><td>{sum(counts[named.key]):,}</td></tr>"
        for named in settings
    )
    summary = (f"<p>{len(sizes)} image(s). Visual tokens per image:</p><table class='lab-table'><thead><tr><th>setting</th>"
               f"<th>min</th><th>median</th><th>max</th><th>total</th></tr></thead><tbody>{rows}</tbody></table>")
    if targets:
        small = targets_under_one_cell(targets, small_setting)
        listed = "".join(
            f"<tr><td>{html.escape(t.name)}</td><td>{html.escape(t.label)}</td><td>{t.box[2] - t.box[0]:.0f}×"
            f"{t.box[3] - t.box[1]:.0f}</td><td>{t.cells:.2f}</td></tr>" for t in small)
        summary += (f"<p><b>{len(small)} of {len(targets)} click targets</b> fall under one token cell at "
                    f"{html.escape(small_setting.label)}:</p>")
        if small:
            summary += (f"<table class='lab-table'><thead><tr><th>step</th><th>target</th><th>size (px)</th>"
                        f"<th>token cells</th></tr></thead><tbody>{listed}</tbody></table>")
    elif files:
        summary += "<p>Uploaded screenshots carry no element boxes, so small targets cannot be listed.</p>"
    if problems:
        summary += "<p>Skipped: " + html.escape(" ".join(problems)) + "</p>"
    return figure, summary


def token_distribution_plot(counts: dict[str, list[int]], settings: list[NamedSetting]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.2))
    labels = [named.label.replace(" (", "\n(") for named in settings]
    axis.boxplot([counts[named.key] or [0] for named in settings], tick_labels=labels, showmeans=True)
    axis.set_ylabel("visual tokens per image")
    axis.set_yscale("log")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    plt.close(figure)
    return figure
