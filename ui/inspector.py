"""Mask Inspector: every token of a sample coloured by what the loss does with it, and a dataset audit.

Wiring and formatting only: the ids, labels, verdicts and audit numbers come from lora_core.analysis (inspection,
masking, audit), which encode through the chosen recipe's encoder, the trainer's own path.
"""
from __future__ import annotations

import atexit
import html
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gradio as gr
import pandas as pd
from gradio.data_classes import FileData

from lora_core.analysis.audit import AuditReport, audit_dataset
from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.data.datasets import Dataset, demo_dataset, extract_dataset_zip, parse_dataset_text, read_dataset
from lora_core.data.json_input import check_text
from lora_core.data.samples import SampleFormatError, image_reference, is_inline
from lora_core.analysis.inspection import Inspection, inspect_sample, rule_description
from lora_core.analysis.masking import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_PLACEHOLDER_SIZE,
    HISTORY,
    IMAGE,
    SPECIAL,
    SYSTEM,
    TARGET,
    TOKEN_CLASSES,
    USER,
    Finding,
)
from lora_core.qwen.geometry import ImageSettings
from lora_core.analysis.resolution import preset_settings

DEFAULT_SETTING = "max520"  # the run config's default max_dim
MODES = [("last — the seed's rule: only the final answer", "last"), ("all — every assistant answer", "all")]
CLASS_CODES = {SYSTEM: "s", USER: "u", IMAGE: "i", HISTORY: "h", TARGET: "t", SPECIAL: "x"}
LEVEL_NAMES = {"error": "problem", "warn": "warning", "info": "note", "ok": "ok"}
UPLOAD_HINT = ("Images are looked up beside the dataset file: upload a .zip holding the dataset and its image "
               "folder, or give the dataset's path on this machine.")


@dataclass
class Source:
    """The dataset this session is looking at."""

    dataset: Dataset
    notes: list[str] = field(default_factory=list)
    key: str = ""  # changes whenever a new source is loaded
    folder: Path | None = None  # the temp folder an uploaded .zip was unpacked into; removed by release()

    def release(self) -> None:
        """Delete this source's temp folder (its images go with it); called when a new source replaces it."""
        if self.folder is not None:
            remove_temp_folder(self.folder)
            self.folder = None

    def first_shown(self) -> int | None:
        """The sample to open first: for the demo, one with a history, so the modes differ."""
        if not len(self.dataset):
            return None
        if self.key.startswith("demo"):
            for index, entry in enumerate(self.dataset.entries):
                answers = [m for m in (entry.record or {}).get("messages", []) if m.get("role") == "assistant"]
                if len(answers) >= 3:
                    return index
        return 0

    def choices(self) -> list[tuple[str, int]]:
        return [(entry.title(), index) for index, entry in enumerate(self.dataset.entries)]


# ---------------------------------------------------------------- sources

TEMP_FOLDERS: set[Path] = set()  # unpacked uploads still on disk; whatever is left goes when the app exits


def new_temp_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="inspector-zip-"))
    TEMP_FOLDERS.add(folder)
    return folder


def remove_temp_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    TEMP_FOLDERS.discard(Path(folder))


@atexit.register
def remove_temp_folders() -> None:
    for folder in list(TEMP_FOLDERS):
        remove_temp_folder(folder)


def release_source(source) -> None:
    """gr.State's delete_callback: a closed session's source gives back its temp folder."""
    if isinstance(source, Source):
        source.release()


def replace_source(previous: Source | None, make, *args) -> Source:
    """The session's new source from make(*args); the one it replaces gives back its temp folder.
    When make fails, the previous source stays (and keeps its folder)."""
    source = make(*args)
    if isinstance(previous, Source) and previous is not source and previous.folder != source.folder:
        previous.release()
    return source


def demo_source(ctx, max_images: int) -> Source:
    dataset = demo_dataset(ctx.demo, max(1, int(max_images or 1)))
    return Source(dataset, [f"{len(dataset)} samples sliced from {len(ctx.demo.trajectories)} demo trajectories, "
                            f"{int(max_images or 1)} screenshot(s) kept per sample."], f"demo-{max_images}")


def file_source(path: str) -> Source:
    """An uploaded .jsonl / .json, or a .zip holding one with its images."""
    path = Path(path)
    notes = []
    if path.suffix.lower() != ".zip":
        dataset = read_dataset(path)
        return Source(dataset, dataset_notes(dataset), f"file-{path}")
    folder = new_temp_folder()  # checked before unpacking (lora_core.data.archives); removed if anything fails
    try:
        found = extract_dataset_zip(path, folder)
        dataset_path = found[0]
        if len(found) > 1:
            notes.append(f"The .zip holds {len(found)} datasets; showing {dataset_path.relative_to(folder)}.")
        dataset = read_dataset(dataset_path)
    except BaseException:
        remove_temp_folder(folder)
        raise
    return Source(dataset, notes + dataset_notes(dataset), f"file-{path}-{folder.name}", folder)


def path_source(ctx, text: str) -> Source:
    if not server_paths_allowed(ctx):
        raise ValueError("This app is served publicly, so it does not read paths on its machine; upload the dataset "
                         "(a .zip with its images) instead.")
    if not text or not text.strip():
        raise ValueError("Give the path of a .jsonl or .json dataset on this machine.")
    try:
        dataset = read_dataset(Path(text.strip()).expanduser())
    except (ValueError, OSError) as error:
        raise ValueError(user_message(error, ctx)) from None
    return Source(dataset, [user_message(note, ctx) for note in dataset_notes(dataset)], f"path-{text.strip()}")


def pasted_source(ctx, text: str) -> Source:
    """Pasted JSON. A private app resolves its image paths inside the workspace; a public one (demo mode, or
    exposed) reads no server file: only the demo screenshots by name (home.png) and inline data: images."""
    if not text or not text.strip():
        raise ValueError("Paste a sample first: {\"messages\": [...]}, a message list, a JSON list or JSONL lines.")
    check_text(text, "pasted JSON")  # too large for the paste box: a sentence (nesting is checked when parsed)
    if server_paths_allowed(ctx):
        dataset = parse_dataset_text(text, ctx.workspace, "pasted JSON")
        note = "Image paths resolve inside the workspace folder (--workspace)."
    else:
        screens = {Path(screen.path).name: Path(screen.path) for screen in ctx.demo.screens}
        folder = next(iter(screens.values())).parent if screens else Path(ctx.workspace) / "demo-screens"
        dataset = parse_dataset_text(text, folder, "pasted JSON")
        refuse_server_references(dataset, sorted(screens))
        note = (f"Images: the demo screenshots by name ({', '.join(sorted(screens)[:3])}, …) or inline data: images; "
                "upload a .zip to inspect your own.")
    notes = [user_message(line, ctx) for line in dataset_notes(dataset)] + [note]
    return Source(dataset, notes, f"paste-{hash(text)}")


def pasted_references(record) -> list:
    """The image references a record names: its `images` list and its content items' image / image_url."""
    references = list(record["images"]) if isinstance(record.get("images"), list) else []
    messages = record.get("messages") if isinstance(record.get("messages"), list) else []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            references += [image_reference(item) for item in content
                           if isinstance(item, dict) and item.get("type") in ("image", "image_url")]
    return references


DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def refuse_server_references(dataset: Dataset, names: list[str]) -> None:
    """Public app: a pasted record naming any file but a demo screenshot (by its bare name) is unreadable, with a
    sentence that names the reference and not the server folder. Raises when no record is left."""
    for entry in dataset.entries:
        if entry.error or not isinstance(entry.record, dict):
            continue
        for reference in pasted_references(entry.record):
            if not isinstance(reference, str) or is_inline(reference) or reference in names:
                continue  # a non-string is refused by the sample reader with its own sentence
            base = reference.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
            shown = (f"'…/{base}' (an absolute path)" if Path(reference).is_absolute() or DRIVE.match(reference)
                     else repr(reference))  # its folder may be one of this machine's: only the name is echoed
            fix = (f"name it {base} alone" if base in names else
                   f"name one of the demo screenshots ({', '.join(names)}) or use an inline data: image")
            entry.error = (f"image {shown} is not one of the demo screenshots, and this public app reads no "
                           f"other file on its machine: {fix}, or upload a .zip holding your dataset and its images.")
            entry.record = None
            break
    readable = [entry for entry in dataset.entries if not entry.error]
    if not readable:
        first = dataset.entries[0]
        raise SampleFormatError(f"{dataset.name}, {first.where}: {first.error}")


def server_folders(ctx=None) -> list[str]:
    """Folders of this machine that no message shows: the workspace, temp folders (gradio's uploads), the
    installed packages and the app itself."""
    import sysconfig

    folders = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR", ""), sys.prefix, sys.base_prefix,
               str(Path(__file__).resolve().parent.parent), *sysconfig.get_paths().values()}
    if ctx is not None and getattr(ctx, "workspace", None):
        folders.add(str(ctx.workspace))
    found = set()
    for folder in folders:
        if folder and folder != "/":
            found.add(str(folder).rstrip("/"))
            try:
                found.add(str(Path(folder).resolve()))
            except OSError:
                pass
    return sorted(found, key=len, reverse=True)


def user_message(error, ctx=None) -> str:
    """`error` as shown to a user: every absolute path inside a server folder becomes its file's name."""
    text = str(error)
    for folder in server_folders(ctx):
        text = re.sub(re.escape(folder) + r"(?:/[^\s'\"<>|,;:()\[\]]*)?(?![\w.-])", file_name, text)
    return text


def file_name(match: re.Match) -> str:
    path = match.group(0)
    dots = len(path) - len(path.rstrip("."))  # a sentence's full stop is not part of the name
    name = Path(path[: len(path) - dots]).name
    return (name or "the folder") + "." * dots


def dataset_notes(dataset: Dataset) -> list[str]:
    notes = [f"{dataset.name}: {len(dataset)} sample(s), read as {dataset.form}."]
    if dataset.errors:
        first = next(entry for entry in dataset.entries if entry.error)
        notes.append(f"{dataset.errors} record(s) cannot be read; first: {first.where}: {first.error}")
    return notes


def offers_store(ctx) -> bool:
    """Whether the context has an annotation store, told without opening it (opening draws and seeds the demo)."""
    return hasattr(type(ctx), "store") or getattr(ctx, "store", None) is not None


def store_source(ctx) -> Source | None:
    """The annotation store's samples, when the Authoring side offers them (see the issue note)."""
    store = getattr(ctx, "store", None)
    if store is None:
        return None
    from authoring.export import store_samples

    from lora_core.data.datasets import records_dataset

    samples = store_samples(store)
    dataset = records_dataset(samples, store_root(store), "annotation store", "annotation store")
    return Source(dataset, [f"{len(dataset)} sample(s) from the annotation store (rejected work left out)."],
                  f"store-{len(dataset)}")


def store_root(store) -> Path:
    """The store's folder: its samples' image paths are absolute inside it."""
    return Path(store.folder)


def server_paths_allowed(ctx) -> bool:
    """Reading a path typed by the user is for a workbench on one's own machine, not a public demo."""
    return not (getattr(ctx, "demo_mode", False) or getattr(ctx, "exposed", False))


# ---------------------------------------------------------------- formatting: tokens


@lru_cache(maxsize=65536)
def visible(text: str) -> str:
    """Token text as HTML with spaces, tabs and newlines made visible."""
    shown = html.escape(text, quote=False).replace(" ", "·").replace("\t", "→").replace("\r", "␍").replace("\n", "↵")
    return shown + "<br>" * text.count("\n")


def label_text(label: int | None) -> str:
    if label is None:
        return "dropped by max_length"
    return "−100 (masked)" if label == IGNORE_INDEX else f"{label} (trained)"


def turn_marks(ins: Inspection) -> dict[int, str]:
    """Badges for the rule's positions: assistant start, ans_start, ans_end of each turn."""
    marks: dict[int, list[str]] = {}
    for t in ins.analysis.turns:
        marks.setdefault(t.turn.im_start, []).append(f"A{t.number} start")
        marks.setdefault(t.turn.ans_start, []).append(f"A{t.number} ans_start")
        if t.turn.ans_end is not None:
            marks.setdefault(t.turn.ans_end, []).append(f"A{t.number} ans_end")
    return {index: " · ".join(names) for index, names in marks.items()}


def image_chip(ins: Inspection, number: int, start: int, end: int, cut: int | None) -> str:
    geom = ins.analysis.encoded.geometries[number]
    count = end - start
    columns = max(1, geom.grid_thw[2] // geom.settings.merge_size)
    cut_here = cut is not None and start < cut < end
    title = (f"image {number + 1}: {count} pads (#{start}–#{end - 1}) · id {ins.analysis.special.image_pad} · label −100 · "
             f"{geom.width}×{geom.height} → {geom.resized_width}×{geom.resized_height}, grid "
             f"{'×'.join(map(str, geom.grid_thw))}; each pad is one {geom.settings.token_cell_size} px cell. "
             "Click to expand.")
    extra = f" ✂ {cut - start} kept" if cut_here else ""
    classes = "mi-chip" + (" mi-cutin" if cut_here else "") + (" d" if cut is not None and start >= cut else "")
    return (f'<span class="{classes}" data-image="{number + 1}" data-start="{start}" data-n="{count}" '
            f'data-id="{ins.analysis.special.image_pad}" '
            f'data-cols="{columns}" data-cut="{cut if cut is not None else -1}" title="{html.escape(title)}">'
            f"▦ image {number + 1} ×{count}{extra}</span>")


def tokens_html(ins: Inspection) -> str:
    """The token view: one span per text token, one chip per image's pad run (expanded in the browser)."""
    a = ins.analysis
    ids, texts, classes = a.ids, ins.texts, ins.classes
    labels, kept = a.kept_labels, a.kept
    cut = a.cut
    marks = turn_marks(ins)
    spans = {start: (number, end) for number, (start, end) in enumerate(a.image_spans)}
    dropped = len(ids) - len(kept)
    limit = f"max_length {a.max_length:,}" if a.max_length else "the recipe"
    cut_mark = (f'<span class="mi-cut" id="mi-cut">✂ {limit}: {dropped:,} tokens from here on are dropped</span>'
                if cut is not None else "")
    parts = []
    index, total = 0, len(ids)
    while index < total:
        if index in spans:
            number, end = spans[index]
            if cut is not None and index == cut:
                parts.append(cut_mark)
            parts.append(image_chip(ins, number, index, end, cut))
            if cut is not None and index < cut < end:
                parts.append(cut_mark)
            index = end
            continue
        if index == cut:
            parts.append(cut_mark)
        label = labels[index] if index in kept else None
        css = "k" + CLASS_CODES[classes[index]]
        if label is None:
            css += " d"
        if index in ins.changed:
            css += " c"
        if index in ins.partial:
            css += " p"
        title = f"#{index} · id {ids[index]} · label {label_text(label)}"
        if index in ins.changed:
            title += f" · changed from {ins.compare_mode.value}"
        mark = marks.get(index)
        if mark:
            parts.append(f'<span class="{css} m" id="mi-t-{index}" data-m="{mark}" title="{title} · {mark}">'
                         f"{visible(texts[index])}</span>")
        else:
            parts.append(f'<span class="{css}" title="{title}">{visible(texts[index])}</span>')
        index += 1
    detail = '<div class="mi-detail" id="mi-detail">Click a token for its position, id and label; click an image chip to expand its pads.</div>'
    return f'{detail}<div class="mi-tokens" id="mi-tokens" data-mode="{a.mode.value}">{"".join(parts)}</div>'


def counts_html(ins: Inspection) -> str:
    counts = ins.counts
    legend = "".join(f'<span class="mi-legend-item k{CLASS_CODES[name]}">{html.escape(text)}</span>'
                     for name, text in TOKEN_CLASSES.items())
    legend += '<span class="mi-legend-item kt d">dropped by max_length</span>'
    if ins.compare_mode is not None:
        legend += f'<span class="mi-legend-item kh c">label changed from mode {ins.compare_mode.value}</span>'
    names = [("total", "tokens"), ("image", "image"), ("trained", "trained"), ("masked", "masked"),
             ("dropped", "dropped by the cut")]
    if ins.compare_mode is not None:
        names.append(("changed", f"changed vs {ins.compare_mode.value}"))
    numbers = "".join(f'<span class="mi-count-box">{label} <b class="mi-count" data-count="{key}">{counts[key]:,}</b>'
                      "</span>" for key, label in names)
    return f'<div class="mi-counts" id="mi-counts" data-mode="{ins.analysis.mode.value}">{numbers}</div>' \
           f'<div class="mi-legend">{legend}</div>'


# ---------------------------------------------------------------- formatting: side panel


def findings_html(findings: list[Finding], kind: str) -> str:
    if not findings:
        return f'<p class="mi-none">No {kind} found.</p>'
    items = "".join(f'<li class="mi-{f.level}" data-code="{f.code}"><b class="mi-level">{LEVEL_NAMES[f.level]}</b> '
                    f"{html.escape(f.text)}</li>" for f in findings)
    return f'<ul class="mi-findings" data-kind="{kind}">{items}</ul>'


def jump(index: int | None) -> str:
    if index is None:
        return "—"
    return f'<a class="mi-jump" data-target="{index}" href="javascript:void(0)">#{index:,}</a>'


def rule_html(ins: Inspection) -> str:
    a = ins.analysis
    rows = []
    for t in a.turns:
        message = t.message_index + 1 if t.message_index is not None else "?"
        flag = "" if t.override is None else f" (loss {str(t.override).lower()})"
        rows.append(
            f'<tr data-turn="{t.number}"><td>A{t.number}</td><td>{message}{flag}</td><td>{jump(t.turn.im_start)}</td>'
            f"<td>{jump(t.turn.ans_start)}</td><td>{jump(t.turn.ans_end)}</td><td>{t.trained}</td>"
            f"<td>{html.escape(t.status(a.cut))}</td></tr>")
    table = ("<table class='lab-table mi-turns'><thead><tr><th>turn</th><th>message</th><th>assistant start</th>"
             "<th>ans_start</th><th>ans_end</th><th>trained</th><th>status</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else ""
    return (f'<div class="mi-side"><h4>The rule</h4><p class="mi-rule">{html.escape(rule_description(a.mode, a.encoded.rendered.loss_overrides))}</p>'
            f"{table}<h4>Verdict</h4>{findings_html(a.verdicts, 'verdicts')}"
            f"<h4>Pitfalls</h4>{findings_html(a.pitfalls, 'pitfalls')}</div>")


def history_html(ins: Inspection) -> str:
    cost = ins.history
    if cost is None:
        return ""
    limit = ins.analysis.max_length
    parts = "".join(f"<tr><td>{html.escape(name)}</td><td>{tokens:,}</td></tr>" for name, tokens in cost.parts)
    html_text = (f"<h4>What the history costs</h4><table class='lab-table'><thead><tr><th>part</th><th>tokens</th></tr>"
                 f"</thead><tbody>{parts}</tbody></table>")
    if cost.note:
        html_text += f"<p class='lab-notes'>{html.escape(cost.note)}</p>"

    def variants(title, rows):
        if not rows:
            return ""
        body = "".join(
            f"<tr><td>{html.escape(v.label)}</td><td>{v.length:,}</td><td>{v.saved:,}</td>"
            f"<td>{'yes' if v.fits else 'no'}</td></tr>" for v in rows)
        return (f"<p><b>{title}</b></p><table class='lab-table'><thead><tr><th>re-rendered with</th><th>length</th>"
                f"<th>saves</th><th>fits {limit or '∞'}</th></tr></thead><tbody>{body}</tbody></table>")

    html_text += variants(f"Fewer screenshots ({cost.history_images} before the current turn)", cost.screenshot_variants)
    html_text += variants(f"Fewer history steps ({cost.history_steps} in this sample)", cost.step_variants)
    if not cost.screenshot_variants and not cost.step_variants:
        html_text += "<p class='lab-notes'>No earlier screenshots or history steps to drop.</p>"
    return f'<div class="mi-history" id="mi-history">{html_text}</div>'


# ---------------------------------------------------------------- the preview handler


def setting_encoder(ctx, setting_key: str, mode: str = "last", max_length=None, recipe: str | None = None,
                    recipe_options: str | None = None):
    """The model's encoder under the chosen recipe. Under native: the image preset, label mode and max_length
    of this tab; under a peer recipe: that peer's own options (from the recipe bar)."""
    if recipe and recipe != "native":
        from ui.recipe import recipe_encoder

        return recipe_encoder(ctx, recipe, recipe_options)
    from lora_core.qwen.recipes import options_from_text

    encoder = ctx.encoder()
    extra = options_from_text("native", recipe_options) if recipe_options else {}
    for named in preset_settings(encoder.checkpoint_settings):
        if named.key == setting_key:
            return encoder.using(named.recipe.replace(**{"mode": mode, "max_length": max_length, **extra}))
    raise ValueError(f"Unknown image setting {setting_key!r}.")


def placeholder(width, height) -> tuple[int, int]:
    try:
        size = (int(width), int(height))
    except (TypeError, ValueError):
        raise ValueError("The placeholder size needs a width and a height in pixels.") from None
    if min(size) < 1:
        raise ValueError("The placeholder size must be positive.")
    return size


def positive_length(value) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_LENGTH
    if int(value) < 1:
        raise ValueError(f"max_length must be a positive number of tokens, not {value}.")
    return int(value)


def inspect_source(ctx, source: Source, index: int, mode: str, max_length, setting_key: str, width, height,
                   compare_mode: str | None = None, recipe: str | None = None,
                   recipe_options: str | None = None) -> Inspection:
    """One sample of a source through lora_core.analysis.masking; raises ValueError with a sentence."""
    sample = source.dataset.sample(int(index))
    encoder = setting_encoder(ctx, setting_key, mode, positive_length(max_length), recipe, recipe_options)
    return inspect_sample(sample, encoder, placeholder(width, height), compare_mode)


def preview(ctx, source: Source | None, index, mode, max_length, setting_key, width, height, shown,
            recipe: str | None = None, recipe_options: str | None = None):
    """Handler: (counts, tokens, side panel, history, shown-state). Errors become a warning and a sentence."""
    blank = ("", "", "", "")
    if source is None or index is None:
        return (*blank, None)
    view = (source.key, int(index), max_length, setting_key, width, height, recipe, recipe_options)
    compare = shown["mode"] if shown and shown["view"] == list(view) and shown["mode"] != mode else None
    try:
        ins = inspect_source(ctx, source, index, mode, max_length, setting_key, width, height, compare, recipe,
                             recipe_options)
    except Exception as error:  # a sentence for the user, never a traceback; the app keeps working
        message = user_message(error, ctx) if isinstance(error, (ValueError, OSError, RuntimeError)) else \
            user_message(f"This sample could not be inspected ({type(error).__name__}: {error}).", ctx)
        if "does not exist" in message and source.key.startswith("file-"):
            message += " " + UPLOAD_HINT
        gr.Warning(message)
        return (f'<p class="mi-error" id="mi-error">{html.escape(message)}</p>', "", "", "", None)
    notes = "".join(f"<p class='lab-notes'>{html.escape(note)}</p>" for note in source.notes)
    return (counts_html(ins) + notes, tokens_html(ins), rule_html(ins), history_html(ins),
            {"view": list(view), "mode": mode})


# ---------------------------------------------------------------- audit


def audit_summary_html(report: AuditReport) -> str:
    t = report.totals
    lines = [
        ("samples", t["samples"]), ("unreadable", t["errors"]), ("train on nothing (zero_trained)", t["zero_trained"]),
        ("cut by max_length", t["truncated"]), ("target cut (truncated_target)", t["truncated_target"]),
        ("cut inside image pads", t["cut_inside_image"]), ("train a history answer instead", t["trains_history_instead"]),
        ("inline images counted at the placeholder size", t["placeholder_images"]),
    ]
    rows = "".join(f'<tr><td>{name}</td><td data-total="{name.split("(")[-1].rstrip(")")}">{value:,}</td></tr>'
                   for name, value in lines)
    length, trained, image = t["length"], t["trained_tokens"], t["image_tokens"]
    spread_rows = "".join(
        f"<tr><td>{name}</td><td>{s['min']:,}</td><td>{s['median']:,}</td><td>{s['p90']:,}</td><td>{s['max']:,}</td></tr>"
        for name, s in (("length (tokens)", length), ("trained tokens per sample", trained),
                        ("image tokens per sample", image)))
    pitfalls = ", ".join(f"{code}: {count}" for code, count in t["pitfalls"].items()) or "none"
    settings = "".join(
        f"<tr><td>{html.escape(s['label'])}</td><td>{s['image_tokens_total']:,}</td><td>{s['image_tokens_mean']:,}</td>"
        f"<td>{s['median_length']:,}</td><td>{s['max_length_seen']:,}</td><td>{s['over_max_length']:,}</td></tr>"
        for s in report.by_setting)
    return (
        f'<div id="mi-audit-summary"><p><b>{html.escape(report.dataset)}</b> ({html.escape(report.form)}), mode '
        f"{report.mode}, max_length {report.max_length:,}, {html.escape(report.settings)}.</p>"
        f"<table class='lab-table'><tbody>{rows}</tbody></table>"
        f"<table class='lab-table'><thead><tr><th></th><th>min</th><th>median</th><th>p90</th><th>max</th></tr></thead>"
        f"<tbody>{spread_rows}</tbody></table><p>Pitfalls: {html.escape(pitfalls)}</p>"
        "<p><b>Image tokens per setting</b> (same samples; only the pad counts change)</p>"
        "<table class='lab-table'><thead><tr><th>setting</th><th>image tokens</th><th>per sample</th>"
        f"<th>median length</th><th>longest</th><th>over max_length</th></tr></thead><tbody>{settings}</tbody></table></div>")


PROBLEM_HEADERS = ["#", "where", "id", "length", "trained", "problem"]


PITFALL_PHRASES = {
    "literal_im_end": "literal <|im_end|> in an answer", "template_text": "template token text in a message",
    "no_assistant_turn": "no assistant turn", "turn_count": "turns and messages disagree",
    "empty_target": "empty target", "last_message_user": "ends on a user turn",
    "answer_too_long": "answer longer than max_length", "bad_coordinate": "coordinate not finite or negative",
}


def problem_phrase(row) -> str:
    """A short list of what is wrong with one audited sample (the inspector explains each in full)."""
    if row.error:
        return f"unreadable: {row.error}"
    phrases = []
    if row.zero_trained:
        phrases.append("trains on nothing")
    if row.truncated_target:
        phrases.append("target cut")
    elif row.truncated:
        phrases.append("cut by max_length")
    if row.trains_history_instead:
        phrases.append("trains a history answer instead")
    if row.cut_inside_image is not None:
        phrases.append(f"cut inside image {row.cut_inside_image + 1}: fails in training")
    phrases += [PITFALL_PHRASES[code] for code in dict.fromkeys(row.pitfalls) if code in PITFALL_PHRASES]
    return "; ".join(dict.fromkeys(phrases))


def problem_rows(report: AuditReport) -> list[list]:
    return [[row.number, row.where, row.sample_id or "", row.length, row.trained_tokens, problem_phrase(row)]
            for row in report.problem_rows]


def audit_plot(report: AuditReport):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    read = [row for row in report.rows if not row.error]
    figure, (lengths, trained) = plt.subplots(1, 2, figsize=(10, 3.2))
    lengths.hist([row.length for row in read] or [0], bins=30, color="#4a7bd0")
    if report.max_length:
        lengths.axvline(report.max_length, color="#d11", linestyle="--", label=f"max_length {report.max_length:,}")
        lengths.legend()
    lengths.set_xlabel("tokens per sample (before the cut)")
    lengths.set_ylabel("samples")
    trained.hist([row.trained_tokens for row in read] or [0], bins=30, color="#2a9d55")
    trained.set_xlabel("trained tokens per sample (after the cut)")
    figure.tight_layout()
    plt.close(figure)
    return figure


def run_audit(ctx, source: Source | None, mode, max_length, setting_key, width, height, progress=None,
              recipe: str | None = None, recipe_options: str | None = None) -> AuditReport:
    if source is None:
        raise ValueError("Load a dataset first.")
    encoder = setting_encoder(ctx, setting_key, mode, positive_length(max_length), recipe, recipe_options)

    def step(done, total):
        if progress is not None and (done == total or done % 10 == 0):
            progress((done, total), desc="auditing samples")

    return audit_dataset(source.dataset, encoder, placeholder(width, height), progress=step)


# ---------------------------------------------------------------- the tab


def build(ctx, blocks: gr.Blocks) -> None:
    """The Mask Inspector tab."""
    source_state = gr.State(None, delete_callback=release_source)
    shown_state = gr.State(None)
    audit_state = gr.State([])  # dataset index of each problem row shown

    gr.Markdown(
        "See every token the loss is computed on, rendered by the model's chat template and tokenizer exactly as the "
        "trainer renders it. Pick a source and a sample; switch the label mode, max_length or image setting to see "
        "what changes.")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            with gr.Tabs():
                with gr.Tab("Demo"):
                    demo_images = gr.Slider(1, 5, value=2, step=1, label="screenshots kept per sample (max_images)",
                                            elem_id="mi-demo-images")
                    demo_button = gr.Button("Load demo trajectories", size="sm")
                with gr.Tab("Upload"):
                    upload = gr.File(label=".jsonl / .json dataset, or a .zip with its images",
                                     file_types=[".jsonl", ".json", ".zip"], type="filepath", elem_id="mi-upload")
                with gr.Tab("Paste"):
                    pasted = gr.Textbox(lines=6, max_lines=20, label="JSON: a record, a message list, a list or JSONL",
                                        placeholder='{"messages": [{"role": "user", "content": "..."}, '
                                                    '{"role": "assistant", "content": "..."}]}', elem_id="mi-paste")
                    paste_button = gr.Button("Inspect pasted JSON", size="sm", elem_id="mi-paste-button")
                with gr.Tab("Path", visible=server_paths_allowed(ctx)):
                    path_box = gr.Textbox(label="dataset path on this machine (images resolve beside it)",
                                          elem_id="mi-path")
                    path_button = gr.Button("Load", size="sm", elem_id="mi-path-button")
                if offers_store(ctx):
                    with gr.Tab("Annotation store"):
                        store_button = gr.Button("Load the annotation store's samples", size="sm")
                else:
                    store_button = None
            source_info = gr.Markdown(elem_id="mi-source-info")
        with gr.Column(scale=3):
            sample_choice = gr.Dropdown([], label="Sample", elem_id="mi-sample")
            with gr.Row():
                mode = gr.Radio(MODES, value="last", label="Label mode", elem_id="mi-mode")
                max_length = gr.Number(DEFAULT_MAX_LENGTH, label="max_length (tokens)", precision=0,
                                       elem_id="mi-max-length")
            with gr.Row():
                setting = gr.Dropdown([(named.label, named.key) for named in preset_settings(ImageSettings())],
                                      value=DEFAULT_SETTING, label="Image setting", elem_id="mi-setting")
                placeholder_w = gr.Number(DEFAULT_PLACEHOLDER_SIZE[0], label="inline image width", precision=0)
                placeholder_h = gr.Number(DEFAULT_PLACEHOLDER_SIZE[1], label="inline image height", precision=0)
    counts = gr.HTML(elem_id="mi-counts-panel")
    with gr.Row():
        with gr.Column(scale=3):
            tokens = gr.HTML(elem_id="mi-token-panel")
        with gr.Column(scale=2):
            side = gr.HTML(elem_id="mi-side-panel")
            history = gr.HTML(elem_id="mi-history-panel")
    with gr.Accordion("Dataset audit: every sample of this source", open=True):
        audit_button = gr.Button("Audit this dataset", elem_id="mi-audit-button")
        audit_summary = gr.HTML(elem_id="mi-audit-panel")
        audit_figure = gr.Plot(label="Lengths and trained tokens", visible=False)
        problems = gr.Dataframe(headers=PROBLEM_HEADERS, datatype=["number", "str", "str", "number", "number", "str"],
                                label="Samples with problems (select a row to open it above)", interactive=False,
                                wrap=True, column_widths=["6%", "12%", "24%", "8%", "8%", "42%"],
                                elem_id="mi-problems")
        audit_file = gr.File(label="Audit as JSON", interactive=False)

    bar = ctx.recipe_bar
    recipe_inputs = bar.inputs if bar is not None else []
    view_inputs = [source_state, sample_choice, mode, max_length, setting, placeholder_w, placeholder_h, shown_state,
                   *recipe_inputs]
    view_outputs = [counts, tokens, side, history, shown_state]

    def show(*args):
        return preview(ctx, *args)

    def loaded(make):
        """Wrap a source loader: new source, sample choices, first sample selected; errors as warnings.
        The handler's last input is the session's current source, which gives back its temp folder when replaced."""
        def handler(*args):
            *inputs, previous = args
            try:
                source = replace_source(previous, make, *inputs)
            except (ValueError, OSError, RuntimeError) as error:
                gr.Warning(user_message(error, ctx))
                return gr.update(), gr.update(), gr.update()
            except Exception as error:  # an unexpected shape of input: say so, keep the current source
                gr.Warning(user_message(f"This source could not be read ({type(error).__name__}: {error}).", ctx))
                return gr.update(), gr.update(), gr.update()
            note = user_message("\n\n".join(source.notes), ctx)
            return source, gr.update(choices=source.choices(), value=source.first_shown()), note
        return handler

    load_outputs = [source_state, sample_choice, source_info]
    demo_button.click(loaded(lambda n: demo_source(ctx, n)), [demo_images, source_state], load_outputs).then(
        show, view_inputs, view_outputs)
    upload.upload(loaded(file_source), [upload, source_state], load_outputs).then(show, view_inputs, view_outputs)
    paste_button.click(loaded(lambda text: pasted_source(ctx, text)), [pasted, source_state], load_outputs).then(
        show, view_inputs, view_outputs)
    load_path = loaded(lambda text: path_source(ctx, text))
    path_button.click(load_path, [path_box, source_state], load_outputs).then(show, view_inputs, view_outputs)
    path_box.submit(load_path, [path_box, source_state], load_outputs).then(show, view_inputs, view_outputs)
    if store_button is not None:
        store_button.click(loaded(lambda: store_source(ctx)), source_state, load_outputs).then(
            show, view_inputs, view_outputs)
    for component in (sample_choice, mode, setting):
        component.input(show, view_inputs, view_outputs)
    if bar is not None:
        bar.on_change(show, view_inputs, view_outputs)
    for component in (max_length, placeholder_w, placeholder_h):
        component.submit(show, view_inputs, view_outputs)
        component.blur(show, view_inputs, view_outputs)

    def audit(source, mode_value, length, setting_key, width, height, recipe=None, recipe_options=None,
              progress=gr.Progress()):
        try:
            report = run_audit(ctx, source, mode_value, length, setting_key, width, height, progress, recipe,
                               recipe_options)
        except (ValueError, OSError, RuntimeError) as error:
            gr.Warning(user_message(error, ctx))
            return gr.update(), gr.update(), gr.update(), gr.update(), []
        rows = problem_rows(report)
        path = Path(tempfile.mkdtemp(prefix="mask-audit-")) / "audit.json"
        path.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
        table = pd.DataFrame(rows, columns=PROBLEM_HEADERS)
        return (audit_summary_html(report), gr.update(value=audit_plot(report), visible=True), table, str(path),
                [row[0] - 1 for row in rows])

    audit_button.click(audit, [source_state, mode, max_length, setting, placeholder_w, placeholder_h, *recipe_inputs],
                       [audit_summary, audit_figure, problems, audit_file, audit_state])

    def open_problem(indices, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if row is None or not 0 <= row < len(indices):
            return gr.update()
        return gr.update(value=indices[row])

    problems.select(open_problem, audit_state, sample_choice).then(show, view_inputs, view_outputs)
    gr.api(inspect_api(ctx), api_name="mask_inspect")
    gr.api(audit_api(ctx), api_name="mask_audit")
    blocks.load(loaded(lambda n: demo_source(ctx, n)), [demo_images, source_state], load_outputs).then(
        show, view_inputs, view_outputs)


# ---------------------------------------------------------------- HTTP API (gradio_client)


def api_source(ctx, dataset: FileData | None, text: str | None) -> Source:
    if dataset:
        path = dataset["path"] if isinstance(dataset, dict) else str(dataset)
        return file_source(path)
    if text:
        return pasted_source(ctx, text)
    return demo_source(ctx, 2)


def inspect_api(ctx):
    def mask_inspect(dataset: FileData | None = None, text: str | None = None, index: int = 0, mode: str = "last",
                     max_length: int = DEFAULT_MAX_LENGTH, setting: str = DEFAULT_SETTING) -> dict:
        """Ids, labels, counts, verdicts and pitfalls of one sample (a .jsonl/.json/.zip upload, pasted JSON, or the
        demo samples when neither is given)."""
        source = None
        try:
            source = api_source(ctx, dataset, text)
            ins = inspect_source(ctx, source, index, mode, max_length, setting, *DEFAULT_PLACEHOLDER_SIZE)
        except (ValueError, OSError) as error:
            raise gr.Error(user_message(error, ctx)) from None
        finally:
            release_source(source)  # an API call's unpacked upload is not kept
        a = ins.analysis
        return {
            "dataset": source.dataset.name, "form": source.dataset.form, "samples": len(source.dataset),
            "counts": ins.counts, "input_ids": a.encoded.input_ids, "labels": a.encoded.labels,
            "cut": a.cut, "cut_inside_image": a.cut_inside_image, "truncated_target": a.truncated_target,
            "verdicts": [f.__dict__ for f in a.verdicts], "pitfalls": [f.__dict__ for f in a.pitfalls],
            "turns": [{"number": t.number, "im_start": t.turn.im_start, "ans_start": t.turn.ans_start,
                       "ans_end": t.turn.ans_end, "trained": t.trained, "status": t.status(a.cut)} for t in a.turns],
        }

    return mask_inspect


def audit_api(ctx):
    def mask_audit(dataset: FileData | None = None, text: str | None = None, mode: str = "last",
                   max_length: int = DEFAULT_MAX_LENGTH, setting: str = DEFAULT_SETTING) -> dict:
        """The dataset audit (totals, per-setting image tokens, one row per sample) of an upload or pasted JSON."""
        source = None
        try:
            source = api_source(ctx, dataset, text)
            report = run_audit(ctx, source, mode, max_length, setting, *DEFAULT_PLACEHOLDER_SIZE)
        except (ValueError, OSError) as error:
            raise gr.Error(user_message(error, ctx)) from None
        finally:
            release_source(source)
        return report.as_dict()

    return mask_audit


# ---------------------------------------------------------------- page CSS and script

CSS = """
#mi-token-panel .mi-tokens { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; line-height: 1.9;
  max-height: 760px; overflow-y: auto; padding: 6px; border: 1px solid var(--border-color-primary); border-radius: 6px;
  word-break: break-all; }
.mi-tokens > span, .mi-legend-item { border-radius: 3px; padding: 1px 1px; margin: 0 1px 0 0; cursor: pointer;
  border: 1px solid transparent; }
.ks { background: #e6e0f5; color: #3d2a7a; }
.ku { background: #dbe9fb; color: #143d73; }
.ki, .mi-chip { background: #f4dfb8; color: #6b4500; }
.kh { background: #e5e5e5; color: #555; }
.kt { background: #b9efc5; color: #0b5a21; font-weight: 600; border-color: #2a9d55 !important; }
.kx { background: #f3c9c9; color: #7a1111; }
.mi-tokens .p { font-style: italic; opacity: 0.8; }
.mi-tokens .d, .mi-legend-item.d { opacity: 0.35; text-decoration: line-through; }
.mi-tokens .c, .mi-legend-item.c { outline: 2px solid #f0a000; outline-offset: 0; background-image:
  repeating-linear-gradient(45deg, rgba(240,160,0,.25) 0 3px, transparent 3px 6px); }
.mi-tokens .m { position: relative; border-left: 2px solid #d11 !important; }
.mi-tokens .m::before { content: attr(data-m); position: absolute; top: -1.25em; left: -2px; font-size: 9px;
  line-height: 1; color: #fff; background: #d11; padding: 1px 3px; border-radius: 2px; white-space: nowrap;
  font-weight: normal; text-decoration: none; pointer-events: none; }
.mi-tokens .sel { outline: 2px solid #1a55d0 !important; }
.mi-chip { font-weight: 600; padding: 1px 6px !important; border: 1px dashed #b07a10 !important; }
.mi-chip.open { background: #e9c77f; }
.mi-chip.mi-cutin { border: 2px solid #d11 !important; }
.mi-pads { display: inline-grid; gap: 1px; margin: 2px 4px; vertical-align: top; }
.mi-pads > span { font-size: 10px; line-height: 1.1; text-align: center; cursor: pointer; }
.mi-cut { display: inline-block; color: #fff; background: #d11; font-weight: bold; padding: 0 6px; margin: 0 3px;
  border-radius: 3px; }
.mi-detail { font-family: ui-monospace, monospace; font-size: 12px; padding: 4px 6px; margin-bottom: 4px;
  background: var(--background-fill-secondary); border-radius: 4px; min-height: 1.6em; }
.mi-counts { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0; }
.mi-count-box { border: 1px solid var(--border-color-primary); border-radius: 5px; padding: 2px 8px; }
.mi-legend { display: flex; flex-wrap: wrap; gap: 6px; font-size: 12px; margin: 4px 0; }
.mi-legend-item { padding: 1px 6px; cursor: default; }
.mi-findings { padding-left: 1em; margin: 0.3em 0; }
.mi-findings li { margin: 0.25em 0; list-style: none; }
.mi-level { font-size: 0.75em; text-transform: uppercase; padding: 0 4px; border-radius: 3px; color: #fff; }
.mi-ok .mi-level { background: #2a9d55; }
.mi-info .mi-level { background: #4a7bd0; }
.mi-warn .mi-level { background: #c80; }
.mi-error .mi-level { background: #c11; }
.mi-findings .mi-error { color: #b00; }
.mi-rule { font-size: 0.88em; }
.mi-side h4, .mi-history h4 { margin: 0.6em 0 0.2em; }
.mi-error { color: #b00; font-weight: bold; }
"""

# Runs once per page: expands image chips in the browser (no pad spans are sent for a collapsed chip),
# shows a clicked token's details, and scrolls to a position linked from the side panel.
JS = """
() => {
  const detail = (text) => { const bar = document.getElementById('mi-detail'); if (bar) bar.textContent = text; };
  const expand = (chip) => {
    const next = chip.nextElementSibling;
    if (next && next.classList.contains('mi-pads')) { next.remove(); chip.classList.remove('open'); return; }
    const start = +chip.dataset.start, count = +chip.dataset.n, columns = +chip.dataset.cols, cut = +chip.dataset.cut;
    const image = chip.dataset.image;
    const cells = [];
    for (let k = 0; k < count; k++) {
      const i = start + k, dropped = cut >= 0 && i >= cut;
      const label = dropped ? 'dropped by max_length' : '\u2212100 (masked)';
      cells.push(`<span class="ki${dropped ? ' d' : ''}" title="#${i} \u00b7 id ${chip.dataset.id} \u00b7 label ${label} \u00b7 image ${image}, cell row ${Math.floor(k / columns)}, column ${k % columns}">\u25a6</span>`);
    }
    const grid = document.createElement('span');
    grid.className = 'mi-pads';
    grid.style.gridTemplateColumns = `repeat(${columns}, 1.2em)`;
    grid.innerHTML = cells.join('');
    chip.after(grid);
    chip.classList.add('open');
    detail(`image ${image}: ${count} pads shown as the ${columns}-column grid of 32 px cells they cover`);
  };
  document.addEventListener('click', (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    const chip = target.closest('.mi-chip');
    if (chip) { expand(chip); return; }
    const link = target.closest('.mi-jump');
    if (link) {
      const token = document.getElementById('mi-t-' + link.dataset.target);
      if (token) { token.scrollIntoView({block: 'center'}); token.classList.add('sel'); detail(token.title); }
      return;
    }
    const token = target.closest('.mi-tokens span[title], .mi-pads span[title]');
    if (token) {
      document.querySelectorAll('.mi-tokens .sel').forEach((el) => el.classList.remove('sel'));
      token.classList.add('sel');
      detail(token.title);
    }
  });
}
"""
