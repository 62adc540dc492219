"""The zoomable screenshot the clicking tabs share (Lab, Authoring): a gr.HTML run by static/canvas.js.

The server sends a small JSON (image URL, size, marks, box, what clicks do); the browser draws the marks and
sends clicks back as abs-original pixels in the canvas's `click` event (`evt._data`: kind "point" with x, y, or
kind "box" with box [x1, y1, x2, y2]; seq and key name the click and what the canvas showed). The JSON may
also carry HTML panels for elsewhere on the page, screenshots to load ahead, and the token of the edit it answers.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

import gradio as gr

STATIC = Path(__file__).resolve().parent / "static"
CANVAS_CSS = (STATIC / "canvas.css").read_text()
CANVAS_JS = (STATIC / "canvas.js").read_text() + "\nmountZoomCanvas(element, trigger, props, watch);\n"


def zoom_canvas(name: str, height: str, elem_id: str) -> gr.HTML:
    """An empty canvas; give it canvas_value(...) as its value. `name` tells canvases apart in the page;
    `height` is the view's CSS height (e.g. "min(720px, 80vh)")."""
    return gr.HTML(json.dumps({"name": name}), html_template=f'<div class="zc" data-canvas="{name}" '
                   f'style="--zc-height: {height}"></div>', js_on_load=CANVAS_JS, apply_default_css=False,
                   elem_id=elem_id, elem_classes=["zc-host"])


def canvas_value(name: str, src: str | None, width: int, height: int, *, marks=(), box=None, box_role="box",
                 tool="point", role="point", two_clicks=False, pending=None, key="", seq=0, hint="",
                 message="", panels=None, preload=(), answered="", locked=False) -> str:
    """The JSON a canvas shows. marks: {"role", "x", "y", optional "end": [x, y]}; tool "point" or "box".
    panels: {slot: HTML} for the page's elements with data-zc-panel="slot"; preload: image URLs to fetch and
    decode ahead (the neighbouring steps); answered: the browser's token of the edit this value answers;
    locked: edits are refused now (the page shows no optimistic result)."""
    return json.dumps({
        "name": name, "src": src, "width": int(width), "height": int(height), "marks": list(marks),
        "box": [round(float(v), 1) for v in box] if box else None, "box_role": box_role, "tool": tool,
        "role": role, "two_clicks": bool(two_clicks), "pending": list(pending) if pending else None, "key": key,
        "seq": int(seq), "hint": hint, "message": message, "panels": dict(panels or {}), "preload": list(preload),
        "answered": answered or "", "locked": bool(locked),
    })


def click_point(data) -> tuple[float, float]:
    """The (x, y) of a canvas click, checked; ValueError with a sentence for anything else."""
    try:
        x, y = float(data["x"]), float(data["y"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("The click carried no usable point; click the screenshot again.") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError("The click carried no usable point; click the screenshot again.")
    return x, y


def click_box(data) -> list:
    box = data.get("box") if isinstance(data, dict) else None
    if not isinstance(box, list) or len(box) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise ValueError("The box carried no four corners; draw it again.")
    return [float(v) for v in box]


class FileURLs:
    """URLs the browser loads screenshots from: each file version is copied into gradio's cache once."""

    def __init__(self, block: gr.components.Component, size: int = 256):
        self.block, self.size = block, size
        self._urls: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def url(self, path: Path | str) -> str:
        path = Path(path)
        key = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            if key in self._urls:
                self._urls.move_to_end(key)
                return self._urls[key]
        cached = self.block.move_resource_to_block_cache(str(path))
        url = "gradio_api/file=" + quote(str(cached), safe="/")  # relative: works under a mounted path too
        with self._lock:
            self._urls[key] = url
            while len(self._urls) > self.size:
                self._urls.popitem(last=False)
        return url


class SessionMemory:
    """What the UI last sent each browser session (by id), so unchanged pictures are not sent again; and each
    session's lock."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def of(self, session_id: str) -> dict:
        with self._lock:
            item = self._items.setdefault(session_id, {})
            self._items.move_to_end(session_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return item

    def lock(self, session_id: str) -> threading.Lock:
        """The session's lock: its edits run one after the other, other sessions' meanwhile."""
        item = self.of(session_id)
        with self._lock:
            return item.setdefault("lock", threading.Lock())

    def changed(self, session_id: str, name: str, signature) -> bool:
        """True (and remembered) when `signature` differs from what was last sent as `name`."""
        item = self.of(session_id)
        if item.get(name) == signature:
            return False
        item[name] = signature
        return True
