"""The Resolution Lab's numbers and pictures as HTML: a table that folds its columns into a few cells per
setting (it never overflows), and a grid of equal model-view thumbnails with their marks drawn in SVG, so a
click redraws no picture."""
from __future__ import annotations

import hashlib
import html
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from lora_core.analysis.resolution import render_model_view

BOX_STROKE, POINT_STROKE = "#ff00c8", "#0050ff"


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def report_table(shot, reports, max_length: int) -> str:
    """One row per setting (data-setting); a marked element and point add one cell each, lines stacked inside."""
    head = ["setting", "resized · scale · grid (t,h,w)", f"visual tokens · share of {max_length:,}",
            "token cell on original · click worst case"]
    if shot.box:
        head.append("marked element: resized · token cells · verdict" + (" · text" if shot.text_height else ""))
    if shot.point:
        head.append("point: cell (row, col) · error to cell centre")
    rows = []
    for report in reports:
        label = html.escape(report.setting.label)
        if report.error:
            rows.append(f'<tr data-setting="{report.setting.key}"><td>{label}</td><td colspan="{len(head) - 1}">'
                        f"refused: {html.escape(report.error)}</td></tr>")
            continue
        g = report.geometry
        cell_w, cell_h = g.token_cell_on_original
        wx, wy = report.click.worst_error if report.click else (cell_w / 2, cell_h / 2)
        cells = [
            label,
            f"{g.resized_width}×{g.resized_height}<br>×{g.scale_x:.3f} / ×{g.scale_y:.3f}<br>"
            f"({', '.join(map(str, g.grid_thw))})",
            f'<b data-field="visual_tokens">{g.visual_tokens:,}</b><br>{report.share_of_max_length:.1%}',
            f"{fmt(cell_w)}×{fmt(cell_h)} px<br>±{fmt(wx)} / ±{fmt(wy)} px",
        ]
        if shot.box:
            e = report.element
            element = (f"{fmt(e.resized_width)}×{fmt(e.resized_height)} px<br>"
                       f'<span data-field="cells">{e.cells_wide:.2f}×{e.cells_high:.2f} = {e.cells:.2f}</span> cells<br>'
                       f'<span class="verdict-{e.verdict}" data-field="verdict">{e.verdict}</span>')
            if shot.text_height:
                element += (f'<br>text {fmt(e.text_height)} px: '
                            f'<span class="verdict-{e.text_verdict}" data-field="text">{e.text_verdict}</span>')
            cells.append(element)
        if shot.point:
            c = report.click
            cells.append(f'<span data-field="point-cell">({c.cell_row}, {c.cell_col})</span><br>{fmt(c.centre_error)} px')
        rows.append(f'<tr data-setting="{report.setting.key}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (f'<div class="lab-table-wrap"><table class="lab-table lab-numbers" id="lab-numbers"><thead><tr>{header}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


class ModelViewFiles:
    """The model-view pictures (grids, no marks) as PNG files of this process, drawn once per setting and grid
    choice; returns their browser URLs."""

    def __init__(self, urls, size: int = 64):
        self.urls, self.size = urls, size
        self.folder = Path(tempfile.mkdtemp(prefix="lab-views-"))
        self._made: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def url(self, picture_of, key: tuple) -> tuple[str, int, int]:
        """(url, width, height) of the picture `picture_of()` draws, remembered by `key`."""
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
        picture = picture_of()
        path = self.folder / (hashlib.sha1(repr(key).encode()).hexdigest()[:24] + ".png")
        picture.save(path, format="PNG", compress_level=1)
        made = (self.urls.url(path), picture.width, picture.height)
        with self._lock:
            self._made[key] = made
            while len(self._made) > self.size:
                self._made.popitem(last=False)
        return made


def marks_svg(shot) -> str:
    """The marked element and point over a thumbnail, in original pixels (the picture is the whole screenshot)."""
    parts = []
    if shot.box:
        x0, y0, x1, y1 = shot.box
        parts.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" stroke="{BOX_STROKE}" fill="none"/>')
    if shot.point:
        x, y = shot.point
        parts.append(f'<circle cx="{x}" cy="{y}" r="{max(shot.width, shot.height) / 90:.1f}" stroke="{POINT_STROKE}" '
                     'fill="none"/>')
    return (f'<svg class="lab-view-marks" viewBox="0 0 {shot.width} {shot.height}" preserveAspectRatio="none">'
            f'{"".join(parts)}</svg>')


def views_html(ctx_encoder, shot, reports, files: ModelViewFiles, model_view, show_patches: bool,
               show_tokens: bool) -> str:
    """One equal-sized figure per setting: the model's view with its grids, the marks, and the full caption."""
    figures, overlay = [], marks_svg(shot)
    mtime = Path(shot.path).stat().st_mtime_ns
    for index, report in enumerate(reports):
        caption = html.escape(report.setting.label)
        if report.geometry is None:
            figures.append(f'<figure class="lab-view lab-view-refused" id="lab-view-{index}"><div class="lab-view-pic">'
                           f'</div><figcaption>{caption}: refused — {html.escape(report.error or "")}</figcaption></figure>')
            continue
        g = report.geometry
        key = (shot.path, mtime, repr(g), bool(show_patches), bool(show_tokens))
        url, width, height = files.url(lambda: render_model_view(model_view(ctx_encoder, shot, g), g,
                                                                 show_patches=show_patches, show_tokens=show_tokens), key)
        figures.append(
            f'<figure class="lab-view" id="lab-view-{index}" data-setting="{report.setting.key}">'
            f'<a class="lab-view-pic" href="{html.escape(url)}" target="_blank" style="aspect-ratio: {width} / {height}">'
            f'<img src="{html.escape(url)}" alt="{caption}" width="{width}" height="{height}" loading="lazy">{overlay}</a>'
            f'<figcaption>{caption}: {g.resized_width}×{g.resized_height}, {g.visual_tokens:,} tokens</figcaption></figure>')
    return f'<div class="lab-views" id="lab-views">{"".join(figures)}</div>'


LAB_CSS = """
.lab-table-wrap { max-width: 100%; overflow-x: hidden; }
.lab-table { border-collapse: collapse; font-size: 0.88em; margin: 0.4em 0; width: 100%; table-layout: fixed; }
.lab-table th, .lab-table td { overflow-wrap: anywhere; vertical-align: top; }
.lab-numbers th:first-child { width: 22%; }
.lab-views { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(150px, 100%), 1fr)); gap: 10px;
             align-items: start; max-width: 100%; }
.lab-view { margin: 0; min-width: 0; }
.lab-view-pic { display: block; position: relative; width: 100%; background: var(--background-fill-secondary); }
.lab-view-pic img { display: block; width: 100%; height: 100%; object-fit: fill; image-rendering: pixelated; }
.lab-view-marks { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
.lab-view-marks * { vector-effect: non-scaling-stroke; stroke-width: 2.5px; }
.lab-view figcaption { font-size: 0.85em; overflow-wrap: anywhere; white-space: normal; padding-top: 2px; }
"""
