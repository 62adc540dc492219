"""Markers drawn on a screenshot, written as PNG files the UI serves at the original resolution.

Served at full size, the image's pixels are abs-original pixels, so a click on it needs no conversion.
Files are cached by content, so redrawing the same marks costs nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from lora_core.data.images import open_screenshot

COLOURS = {"step": (0, 170, 60), "wrong": (230, 20, 20), "recovery": (20, 100, 240), "pending": (250, 160, 0),
           "target": (0, 170, 60)}


@dataclass(frozen=True)
class Mark:
    """A point (x, y), optionally with an end point (drag / swipe), drawn in the colour of its role."""

    role: str
    x: float
    y: float
    end: tuple[float, float] | None = None


@lru_cache(maxsize=16)
def _decoded(path: str, mtime: float) -> Image.Image:
    return open_screenshot(Path(path))


def marked_screenshot(image: Path, marks: list[Mark], cache_dir: Path, target_box=None) -> Path:
    """The screenshot with its marks; a PNG in cache_dir named by what it shows."""
    image = Path(image)
    stat = image.stat()
    key = json.dumps([str(image), stat.st_mtime, [m.__dict__ for m in marks], target_box], default=list)
    name = hashlib.sha1(key.encode()).hexdigest()[:24] + ".png"
    cache_dir = Path(cache_dir)
    out = cache_dir / name
    if out.exists():
        return out
    picture = _decoded(str(image), stat.st_mtime).copy()
    draw = ImageDraw.Draw(picture)
    scale = max(picture.size) / 1200  # marker size follows the screenshot, not the screen
    if target_box:
        x0, y0, x1, y1 = target_box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=COLOURS["target"], width=max(2, round(3 * scale)))
    for mark in marks:
        colour = COLOURS.get(mark.role, COLOURS["step"])
        radius, width = 22 * scale, max(3, round(5 * scale))
        if mark.end is not None:
            draw.line((mark.x, mark.y, *mark.end), fill=colour, width=width)
            ex, ey = mark.end
            draw.ellipse((ex - radius / 2, ey - radius / 2, ex + radius / 2, ey + radius / 2), fill=colour)
        draw.ellipse((mark.x - radius, mark.y - radius, mark.x + radius, mark.y + radius), outline=colour, width=width)
        draw.ellipse((mark.x - 5 * scale, mark.y - 5 * scale, mark.x + 5 * scale, mark.y + 5 * scale), fill=colour)
        draw.line((mark.x - 2 * radius, mark.y, mark.x - radius, mark.y), fill=colour, width=width)
        draw.line((mark.x + radius, mark.y, mark.x + 2 * radius, mark.y), fill=colour, width=width)
        draw.line((mark.x, mark.y - 2 * radius, mark.x, mark.y - radius), fill=colour, width=width)
        draw.line((mark.x, mark.y + radius, mark.x, mark.y + 2 * radius), fill=colour, width=width)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.part")
    picture.save(partial, format="PNG", compress_level=1)  # fast: this is on the click path
    partial.replace(out)
    return out


def thumbnail(image: Path, cache_dir: Path, longest: int = 480) -> Path:
    image = Path(image)
    stat = image.stat()
    name = hashlib.sha1(f"{image}|{stat.st_mtime}|{longest}".encode()).hexdigest()[:24] + ".jpg"
    out = Path(cache_dir) / name
    if not out.exists():
        picture = _decoded(str(image), stat.st_mtime).copy()
        picture.thumbnail((longest, longest))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f"{out.name}.{os.getpid()}.part")
        picture.save(partial, format="JPEG", quality=80)
        partial.replace(out)
    return out


def marks_for(action: dict, role: str) -> list[Mark]:
    """The marks an action shows: its point, or the start → end of a drag or a swipe with a start."""
    if action.get("action") == "drag":
        start, end = action.get("start_coordinate"), action.get("end_coordinate")
        if start and end:
            return [Mark(role, *start, end=tuple(end))]
        if start:
            return [Mark("pending", *start)]
        return []
    point = action.get("coordinate")
    if point:
        return [Mark(role, *point)]
    return []
