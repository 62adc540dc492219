"""Deterministic synthetic demo data: screenshots and trajectories of a cloud-drive Android app.

`ensure_demo_data(workspace)` draws the screens with Pillow into `workspace/demo/` on first use
and afterwards only reads the JSON. Every drawn element is recorded with its pixel box, so the
data can be used to check grounding, resizing and coordinate handling without a real phone.

Coordinates are absolute pixels of the 1080x2400 screenshot; boxes are (x0, y0, x1, y1) with
x1/y1 exclusive. For text, the box is the measured ink box of the rendered glyphs and
`text_height` is the font size in pixels (the em height the text was drawn with).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEMO_VERSION = 1

WIDTH, HEIGHT = 1080, 2400
APP_NAME = "CloudDrive"
KINDS = frozenset({
    "status_bar", "header", "row", "icon", "text", "button", "tab",
    "text_field", "app_icon", "keyboard", "dialog",
})

_DEMO_DIR = "demo"
_TMP_PREFIX = ".demo-tmp-"
_STALE_PREFIX = ".demo-stale-"
_STALE_TMP_AGE_S = 3600


# ---------------------------------------------------------------- public data classes


@dataclass(frozen=True)
class Element:
    label: str
    kind: str
    box: tuple[int, int, int, int]
    text_height: int | None = None

    @property
    def center(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) // 2, (y0 + y1) // 2

    def to_json(self) -> dict:
        return {"label": self.label, "kind": self.kind, "box": list(self.box),
                "text_height": self.text_height}

    @classmethod
    def from_json(cls, data: dict) -> Element:
        return cls(data["label"], data["kind"], tuple(int(v) for v in data["box"]),
                   data.get("text_height"))


@dataclass(frozen=True)
class DemoScreen:
    name: str
    path: Path
    width: int
    height: int
    elements: tuple[Element, ...]

    def element(self, label: str) -> Element:
        for item in self.elements:
            if item.label == label:
                return item
        raise KeyError(f"screen {self.name!r} has no element labelled {label!r}")


@dataclass(frozen=True)
class DemoStep:
    screenshot: str
    thinking: str
    action: dict
    target: Element | None


@dataclass(frozen=True)
class DemoTrajectory:
    id: str
    task: str
    app: str
    steps: tuple[DemoStep, ...]


@dataclass(frozen=True)
class DemoData:
    root: Path
    screens: tuple[DemoScreen, ...]
    trajectories: tuple[DemoTrajectory, ...]

    def screen(self, name: str) -> DemoScreen:
        for item in self.screens:
            if item.name == name:
                return item
        known = ", ".join(s.name for s in self.screens)
        raise KeyError(f"no demo screen named {name!r} (known: {known})")


# ---------------------------------------------------------------- drawing primitives

BACKGROUND = (255, 255, 255)
SURFACE = (246, 248, 252)
CARD = (240, 243, 248)
INK = (32, 33, 36)
MUTED = (95, 99, 104)
LINE = (226, 229, 234)
BLUE = (26, 115, 232)
BLUE_LIGHT = (225, 236, 254)
DISABLED = (200, 204, 210)
FOLDER_BODY = (247, 190, 56)
FOLDER_TAB = (222, 156, 20)
FILE_COLORS = {"pdf": (217, 48, 37), "xlsx": (24, 128, 56), "pptx": (230, 110, 20)}


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _ink_box(text: str, size: int, xy: tuple[int, int], anchor: str) -> tuple[int, int, int, int]:
    """Exact box of the pixels `draw.text(xy, text, anchor=anchor)` will touch."""
    mask, (dx, dy) = _font(size).getmask2(text, mode="L", anchor=anchor)
    left, top, right, bottom = mask.getbbox()
    x, y = xy
    return x + dx + left, y + dy + top, x + dx + right, y + dy + bottom


class _Canvas:
    """One screenshot being drawn, with the elements recorded so far (in drawing order)."""

    def __init__(self, name: str, background=BACKGROUND):
        self.name = name
        self.image = Image.new("RGB", (WIDTH, HEIGHT), background)
        self.draw = ImageDraw.Draw(self.image)
        self.elements: dict[str, Element] = {}

    def add(self, label: str, kind: str, box, text_height: int | None = None) -> Element:
        box = tuple(int(v) for v in box)
        x0, y0, x1, y1 = box
        if label in self.elements:
            raise ValueError(f"{self.name}: duplicate label {label!r}")
        if kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {kind!r}")
        if not (0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT):
            raise ValueError(f"{self.name}: box {box} of {label!r} is empty or off-screen")
        element = Element(label, kind, box, text_height)
        self.elements[label] = element
        return element

    def text(self, label: str, xy, text: str, size: int, fill=INK, anchor: str = "la") -> Element:
        xy = (int(xy[0]), int(xy[1]))
        self.draw.text(xy, text, font=_font(size), fill=fill, anchor=anchor)
        return self.add(label, "text", _ink_box(text, size, xy, anchor), size)

    def dim(self, strength: float = 0.45) -> None:
        """Darken everything drawn so far, as a modal scrim does."""
        self.image = Image.blend(self.image, Image.new("RGB", self.image.size, (0, 0, 0)), strength)
        self.draw = ImageDraw.Draw(self.image)

    def forget_under(self, area) -> None:
        """Drop elements an overlay covers, even partly: they are no longer fully visible."""
        ax0, ay0, ax1, ay1 = area
        self.elements = {
            label: e for label, e in self.elements.items()
            if e.box[2] <= ax0 or e.box[0] >= ax1 or e.box[3] <= ay0 or e.box[1] >= ay1
        }


# ---------------------------------------------------------------- icons


def _folder_icon(c: _Canvas, name: str, x: int, y: int, size: int) -> Element:
    s = size
    c.draw.rounded_rectangle((x, y + s * 0.12, x + s * 0.46, y + s * 0.4), radius=max(2, s // 14),
                             fill=FOLDER_TAB)
    c.draw.rounded_rectangle((x, y + s * 0.22, x + s - 1, y + s * 0.9), radius=max(2, s // 12),
                             fill=FOLDER_BODY)
    return c.add(f"folder icon: {name}", "icon", (x, y, x + s, y + s))


def _file_icon(c: _Canvas, label: str, x: int, y: int, size: int, extension: str) -> Element:
    s = size
    color = FILE_COLORS[extension]
    left, right = x + s * 0.14, x + s * 0.86 - 1
    fold = s * 0.22
    c.draw.polygon([(left, y), (right - fold, y), (right, y + fold), (right, y + s - 1), (left, y + s - 1)],
                   fill=color)
    c.draw.polygon([(right - fold, y), (right - fold, y + fold), (right, y + fold)], fill=(255, 255, 255))
    for i in range(3):  # text lines on the page
        line_y = y + s * (0.45 + 0.15 * i)
        c.draw.rectangle((left + s * 0.12, line_y, right - s * 0.12, line_y + max(1, s // 20)),
                         fill=(255, 255, 255))
    return c.add(label, "icon", (x, y, x + s, y + s))


def _magnifier(c: _Canvas, cx: int, cy: int, size: int, color=INK) -> None:
    r = size * 0.3
    w = max(2, size // 12)
    c.draw.ellipse((cx - r - size * 0.1, cy - r - size * 0.1, cx + r - size * 0.1, cy + r - size * 0.1),
                   outline=color, width=w)
    c.draw.line((cx + size * 0.1, cy + size * 0.1, cx + size * 0.4, cy + size * 0.4), fill=color, width=w + 1)


def _back_arrow(c: _Canvas, cx: int, cy: int, size: int, color=INK) -> None:
    w = max(3, size // 10)
    half = size * 0.35
    c.draw.line((cx - half, cy, cx + half, cy), fill=color, width=w)
    c.draw.line((cx - half, cy, cx - half + size * 0.28, cy - size * 0.28), fill=color, width=w)
    c.draw.line((cx - half, cy, cx - half + size * 0.28, cy + size * 0.28), fill=color, width=w)


def _avatar(c: _Canvas, person: str, x: int, y: int, size: int, color) -> Element:
    c.draw.ellipse((x, y, x + size - 1, y + size - 1), fill=color)
    initials = "".join(part[0] for part in person.split())
    c.draw.text((x + size // 2, y + size // 2), initials, font=_font(size // 3), fill=(255, 255, 255),
                anchor="mm")
    return c.add(f"icon: avatar {person}", "icon", (x, y, x + size, y + size))


def _checkbox(c: _Canvas, label: str, x: int, y: int, size: int, checked: bool) -> Element:
    if checked:
        c.draw.rounded_rectangle((x, y, x + size - 1, y + size - 1), radius=size // 6, fill=BLUE)
        c.draw.line([(x + size * 0.22, y + size * 0.52), (x + size * 0.42, y + size * 0.72),
                     (x + size * 0.78, y + size * 0.3)], fill=(255, 255, 255), width=max(3, size // 9))
    else:
        c.draw.rounded_rectangle((x, y, x + size - 1, y + size - 1), radius=size // 6, outline=MUTED,
                                 width=max(3, size // 14))
    return c.add(label, "icon", (x, y, x + size, y + size))


def _small_glyph(c: _Canvas, kind: str, cx: int, cy: int, size: int, color) -> None:
    """Simple line icons for tabs and menu entries."""
    s, w = size, max(3, size // 12)
    if kind == "folder":
        c.draw.rounded_rectangle((cx - s * .45, cy - s * .3, cx + s * .45, cy + s * .35), radius=4, outline=color,
                                 width=w)
        c.draw.line((cx - s * .45, cy - s * .15, cx, cy - s * .15), fill=color, width=w)
    elif kind == "clock":
        c.draw.ellipse((cx - s * .42, cy - s * .42, cx + s * .42, cy + s * .42), outline=color, width=w)
        c.draw.line([(cx, cy - s * .25), (cx, cy), (cx + s * .2, cy + s * .12)], fill=color, width=w)
    elif kind == "people":
        c.draw.ellipse((cx - s * .42, cy - s * .4, cx - s * .02, cy), outline=color, width=w)
        c.draw.ellipse((cx + s * .02, cy - s * .4, cx + s * .42, cy), outline=color, width=w)
        c.draw.arc((cx - s * .48, cy + s * .05, cx + s * .48, cy + s * .75), 180, 360, fill=color, width=w)
    elif kind == "person":
        c.draw.ellipse((cx - s * .2, cy - s * .42, cx + s * .2, cy - s * .02), outline=color, width=w)
        c.draw.arc((cx - s * .4, cy + s * .05, cx + s * .4, cy + s * .75), 180, 360, fill=color, width=w)
    elif kind == "share":
        for px, py in ((.3, -.3), (-.3, 0), (.3, .3)):
            c.draw.ellipse((cx + s * px - s * .1, cy + s * py - s * .1, cx + s * px + s * .1, cy + s * py + s * .1),
                           fill=color)
        c.draw.line([(cx + s * .3, cy - s * .3), (cx - s * .3, cy), (cx + s * .3, cy + s * .3)], fill=color,
                    width=w)
    elif kind == "pencil":
        c.draw.line((cx - s * .35, cy + s * .35, cx + s * .3, cy - s * .3), fill=color, width=w * 2)
    elif kind == "move":
        c.draw.line((cx - s * .4, cy, cx + s * .35, cy), fill=color, width=w)
        c.draw.polygon([(cx + s * .4, cy), (cx + s * .15, cy - s * .2), (cx + s * .15, cy + s * .2)], fill=color)
    elif kind in ("download", "upload"):
        tip, tail = (cy + s * .25, cy - s * .35) if kind == "download" else (cy - s * .35, cy + s * .25)
        sign = 1 if kind == "download" else -1
        c.draw.line((cx, tail, cx, tip), fill=color, width=w)
        c.draw.polygon([(cx, tip + sign * s * .08), (cx - s * .2, tip - sign * s * .15),
                        (cx + s * .2, tip - sign * s * .15)], fill=color)
        c.draw.line((cx - s * .4, cy + s * .42, cx + s * .4, cy + s * .42), fill=color, width=w)
    elif kind == "trash":
        c.draw.rectangle((cx - s * .28, cy - s * .22, cx + s * .28, cy + s * .42), outline=color, width=w)
        c.draw.line((cx - s * .4, cy - s * .3, cx + s * .4, cy - s * .3), fill=color, width=w)
    elif kind == "plus":
        c.draw.line((cx - s * .35, cy, cx + s * .35, cy), fill=color, width=w)
        c.draw.line((cx, cy - s * .35, cx, cy + s * .35), fill=color, width=w)


# ---------------------------------------------------------------- shared widgets

STATUS_BOTTOM = 96
HEADER_BOX = (0, 96, WIDTH, 264)
NAV_TOP = 2232
TABS = (("Files", "folder"), ("Recent", "clock"), ("Shared", "people"), ("Me", "person"))
KEYBOARD_TOP = 1580


def _status_bar(c: _Canvas, background=SURFACE, color=INK) -> None:
    if background is not None:
        c.draw.rectangle((0, 0, WIDTH - 1, STATUS_BOTTOM - 1), fill=background)
    c.add("status bar", "status_bar", (0, 0, WIDTH, STATUS_BOTTOM))
    c.text("text: 9:41", (48, 48), "9:41", 32, color, anchor="lm")
    # Wi-Fi: three arcs and a dot
    cx, base = 846, 66
    for r in (12, 22, 32):
        c.draw.arc((cx - r, base - r, cx + r, base + r), 225, 315, fill=color, width=5)
    c.draw.ellipse((cx - 4, base - 6, cx + 4, base + 2), fill=color)
    c.add("icon: Wi-Fi", "icon", (cx - 32, base - 33, cx + 33, base + 3))
    c.text("text: 87%", (940, 48), "87%", 24, color, anchor="rm")
    c.draw.rounded_rectangle((960, 34, 1024, 62), radius=6, outline=color, width=3)
    c.draw.rectangle((965, 39, 1010, 57), fill=color)
    c.draw.rectangle((1025, 42, 1031, 54), fill=color)
    c.add("icon: battery", "icon", (960, 34, 1032, 63))


def _header(c: _Canvas, title: str, back: bool = False, search: bool = True) -> None:
    c.draw.rectangle((0, HEADER_BOX[1], WIDTH - 1, HEADER_BOX[3] - 1), fill=SURFACE)
    c.add(f"header: {title}", "header", HEADER_BOX)
    title_x = 48
    if back:
        _back_arrow(c, 72, 180, 56)
        c.add("button: Back", "button", (24, 132, 120, 228))
        title_x = 144
    c.text(f"text: {title}", (title_x, 180), title, 48, anchor="lm")
    if search:
        _magnifier(c, 996, 180, 64)
        c.add("button: Search", "button", (948, 132, 1044, 228))


def _bottom_nav(c: _Canvas, selected: str) -> None:
    c.draw.rectangle((0, NAV_TOP, WIDTH - 1, HEIGHT - 1), fill=SURFACE)
    c.draw.line((0, NAV_TOP, WIDTH, NAV_TOP), fill=LINE, width=2)
    tab_width = WIDTH // len(TABS)
    for i, (name, glyph) in enumerate(TABS):
        cx = i * tab_width + tab_width // 2
        color = BLUE if name == selected else MUTED
        if name == selected:
            c.draw.rounded_rectangle((cx - 64, 2258, cx + 64, 2322), radius=32, fill=BLUE_LIGHT)
        _small_glyph(c, glyph, cx, 2290, 52, color)
        c.draw.text((cx, 2356), name, font=_font(24), fill=color, anchor="mm")
        c.add(f"tab: {name}", "tab", (i * tab_width, 2244, (i + 1) * tab_width, 2392), 24)


def _button(c: _Canvas, text: str, box, style: str = "filled", glyph: str | None = None,
            size: int = 32) -> Element:
    """Pill button; style is filled, outline, disabled or flat."""
    x0, y0, x1, y1 = box
    fill, outline, color = {
        "filled": (BLUE, None, (255, 255, 255)),
        "outline": (None, LINE, BLUE),
        "disabled": (DISABLED, None, (255, 255, 255)),
        "flat": (None, None, BLUE),
    }[style]
    c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=(y1 - y0) // 2, fill=fill, outline=outline,
                             width=3)
    text_x = (x0 + x1) // 2
    if glyph:
        _small_glyph(c, glyph, x0 + 56, (y0 + y1) // 2, 40, color)
        text_x += 28
    c.draw.text((text_x, (y0 + y1) // 2), text, font=_font(size), fill=color, anchor="mm")
    return c.add(f"button: {text}", "button", box, size)


def _keyboard(c: _Canvas) -> None:
    c.draw.rectangle((0, KEYBOARD_TOP, WIDTH - 1, HEIGHT - 1), fill=(232, 234, 237))
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    key_w, key_h, gap = 96, 132, 12
    y = KEYBOARD_TOP + 40
    for r, keys in enumerate(rows):
        x = (WIDTH - (len(keys) * key_w + (len(keys) - 1) * gap)) // 2
        for key in keys:
            c.draw.rounded_rectangle((x, y, x + key_w, y + key_h), radius=12, fill=(255, 255, 255))
            c.draw.text((x + key_w // 2, y + key_h // 2), key, font=_font(40), fill=INK, anchor="mm")
            x += key_w + gap
        if r == 2:  # shift and delete around the last row
            c.draw.rounded_rectangle((24, y, 124, y + key_h), radius=12, fill=(208, 211, 216))
            c.draw.rounded_rectangle((956, y, 1056, y + key_h), radius=12, fill=(208, 211, 216))
        y += key_h + 24
    c.draw.rounded_rectangle((24, y, 180, y + key_h), radius=12, fill=(208, 211, 216))
    c.draw.text((102, y + key_h // 2), "?123", font=_font(32), fill=INK, anchor="mm")
    c.draw.rounded_rectangle((200, y, 820, y + key_h), radius=12, fill=(255, 255, 255))
    c.draw.rounded_rectangle((840, y, 1056, y + key_h), radius=12, fill=BLUE)
    _small_glyph(c, "move", 948, y + key_h // 2, 56, (255, 255, 255))
    c.add("keyboard", "keyboard", (0, KEYBOARD_TOP, WIDTH, HEIGHT))


def _text_field(c: _Canvas, label: str, box, text: str, size: int, focused: bool,
                placeholder: bool, radius: int = 24) -> Element:
    x0, y0, x1, y1 = box
    c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=radius, fill=(255, 255, 255),
                             outline=BLUE if focused else LINE, width=4 if focused else 3)
    element = c.add(label, "text_field", box)
    if text:
        typed = c.text(f"text: {text}", (x0 + 44, (y0 + y1) // 2), text, size,
                       MUTED if placeholder else INK, anchor="lm")
        cursor_x = x0 + 32 if placeholder else typed.box[2] + 6
    else:
        cursor_x = x0 + 32
    if focused:
        c.draw.rectangle((cursor_x, (y0 + y1) // 2 - size * 0.6, cursor_x + 3, (y0 + y1) // 2 + size * 0.6),
                         fill=BLUE)
    return element


def _dialog_card(c: _Canvas, label: str, box) -> Element:
    c.forget_under(box)
    c.draw.rounded_rectangle((box[0], box[1], box[2] - 1, box[3] - 1), radius=40, fill=(255, 255, 255))
    return c.add(label, "dialog", box)


# ---------------------------------------------------------------- list rows

ROOT_FOLDERS = (
    ("Sales", "14 files, modified May 12"),
    ("Marketing", "23 files, modified May 11"),
    ("Finance", "9 files, modified May 8"),
    ("Photos", "312 files, modified May 14"),
    ("Projects", "41 files, modified Apr 29"),
    ("Personal", "7 files, modified Apr 2"),
)
SALES_FILES = (
    ("Q3 report.pdf", "pdf", "PDF, 2.4 MB, modified May 10"),
    ("Q2 report.pdf", "pdf", "PDF, 2.1 MB, modified Feb 9"),
    ("Pipeline 2024.xlsx", "xlsx", "Spreadsheet, 412 KB, modified May 7"),
    ("Pitch deck.pptx", "pptx", "Slides, 8.9 MB, modified Apr 30"),
    ("Client list.xlsx", "xlsx", "Spreadsheet, 96 KB, modified Apr 18"),
)
PEOPLE = (
    ("Alice Chen", "alice@example.com", (142, 68, 173)),
    ("Bob Martin", "bob.martin@example.com", (0, 137, 123)),
    ("Carol Diaz", "carol.diaz@example.com", (230, 81, 0)),
)


def _folder_row(c: _Canvas, y: int, name: str, details: str) -> None:
    height = 144
    c.add(f"row: {name}", "row", (0, y, WIDTH, y + height))
    _folder_icon(c, name, 48, y + 32, 80)
    c.text(f"text: {name}", (168, y + 76), name, 32, anchor="ls")
    c.text(f"text: {name} details", (168, y + 92), details, 16, MUTED, anchor="la")
    c.draw.line((168, y + height - 1, WIDTH, y + height - 1), fill=LINE, width=2)


def _file_row(c: _Canvas, y: int, name: str, extension: str, details: str) -> None:
    height = 144
    c.add(f"row: {name}", "row", (0, y, WIDTH, y + height))
    _file_icon(c, f"file icon: {name}", 56, y + 40, 64, extension)
    c.text(f"text: {name}", (168, y + 76), name, 32, anchor="ls")
    c.text(f"text: {name} details", (168, y + 92), details, 12, MUTED, anchor="la")
    c.draw.line((168, y + height - 1, WIDTH, y + height - 1), fill=LINE, width=2)


# ---------------------------------------------------------------- screens


def _draw_home(c: _Canvas) -> None:
    top, bottom = np.array((28, 48, 110), float), np.array((132, 84, 168), float)
    t = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    gradient = np.broadcast_to((top + (bottom - top) * t).round().astype(np.uint8), (HEIGHT, WIDTH, 3))
    c.image.paste(Image.fromarray(np.ascontiguousarray(gradient), "RGB"))
    c.draw = ImageDraw.Draw(c.image)
    white = (255, 255, 255)
    _status_bar(c, background=None, color=white)
    c.text("text: Tuesday, May 14", (72, 360), "Tuesday, May 14", 48, white)
    c.text("text: Sunny, 21 degrees", (72, 440), "Sunny, 21 degrees", 32, (220, 226, 245))

    apps = (
        ("Calendar", (66, 133, 244), "square"), ("Gallery", (234, 67, 53), "circle"),
        ("Settings", (95, 99, 104), "ring"), ("Clock", (32, 33, 36), "clock"),
        (APP_NAME, BLUE, "cloud"), ("Maps", (52, 168, 83), "pin"),
        ("Notes", (251, 188, 4), "lines"), ("Weather", (3, 155, 229), "circle"),
    )
    dock = (("Phone", (52, 168, 83), "circle"), ("Messages", (26, 115, 232), "lines"),
            ("Browser", (234, 67, 53), "ring"), ("Camera", (60, 64, 67), "ring"))
    size, column_centres = 160, (150, 410, 670, 930)
    for i, (name, color, glyph) in enumerate(apps):
        cx, y = column_centres[i % 4], 1420 + (i // 4) * 300
        _app_icon(c, name, cx - size // 2, y, size, color, glyph)
        c.text(f"text: {name}", (cx, y + size + 24), name, 24, white, anchor="mt")
    for i, (name, color, glyph) in enumerate(dock):
        _app_icon(c, name, column_centres[i] - size // 2, 2080, size, color, glyph)


def _app_icon(c: _Canvas, name: str, x: int, y: int, size: int, color, glyph: str) -> None:
    s, white = size, (255, 255, 255)
    c.draw.rounded_rectangle((x, y, x + s - 1, y + s - 1), radius=s // 4, fill=color)
    cx, cy = x + s // 2, y + s // 2
    if glyph == "cloud":
        c.draw.ellipse((cx - 52, cy - 10, cx - 8, cy + 34), fill=white)
        c.draw.ellipse((cx - 26, cy - 40, cx + 30, cy + 16), fill=white)
        c.draw.ellipse((cx + 4, cy - 16, cx + 54, cy + 34), fill=white)
        c.draw.rectangle((cx - 30, cy + 8, cx + 30, cy + 34), fill=white)
    elif glyph == "square":
        c.draw.rectangle((cx - 40, cy - 36, cx + 40, cy + 40), outline=white, width=8)
        c.draw.line((cx - 40, cy - 14, cx + 40, cy - 14), fill=white, width=8)
    elif glyph == "circle":
        c.draw.ellipse((cx - 38, cy - 38, cx + 38, cy + 38), fill=white)
    elif glyph == "ring":
        c.draw.ellipse((cx - 42, cy - 42, cx + 42, cy + 42), outline=white, width=12)
    elif glyph == "clock":
        _small_glyph(c, "clock", cx, cy, 100, white)
    elif glyph == "pin":
        c.draw.ellipse((cx - 32, cy - 48, cx + 32, cy + 16), fill=white)
        c.draw.polygon([(cx - 28, cy), (cx + 28, cy), (cx, cy + 50)], fill=white)
        c.draw.ellipse((cx - 12, cy - 28, cx + 12, cy - 4), fill=color)
    elif glyph == "lines":
        for dy in (-30, 0, 30):
            c.draw.line((cx - 40, cy + dy, cx + 40, cy + dy), fill=white, width=10)
    c.add(f"app icon: {name}", "app_icon", (x, y, x + s, y + s))


def _draw_files_root(c: _Canvas, with_archive: bool = False) -> None:
    _status_bar(c)
    _header(c, "My Drive")
    _button(c, "Upload", (48, 296, 360, 392), "filled", glyph="upload")
    _button(c, "New folder", (384, 296, 744, 392), "outline", glyph="plus")
    c.text("text: Folders", (48, 448), "Folders", 24, MUTED)
    folders = ROOT_FOLDERS
    if with_archive:
        folders = (("Archive", "Empty, created just now"),) + folders
    for i, (name, details) in enumerate(folders):
        _folder_row(c, 488 + i * 144, name, details)
    c.text("text: storage status", (48, 2196), "12.4 GB of 100 GB used. Last synced at 9:41.", 10, MUTED)
    _bottom_nav(c, "Files")
    if with_archive:
        c.draw.rounded_rectangle((48, 2048, 1031, 2159), radius=20, fill=(50, 52, 56))
        c.add("dialog: Folder created", "dialog", (48, 2048, 1032, 2160))
        c.text("text: Folder created message", (88, 2104), 'Folder "Archive" created', 32,
               (255, 255, 255), anchor="lm")


def _draw_folder_sales(c: _Canvas) -> None:
    _status_bar(c)
    _header(c, "Sales", back=True)
    _button(c, "Upload", (48, 296, 360, 392), "filled", glyph="upload")
    _button(c, "New folder", (384, 296, 744, 392), "outline", glyph="plus")
    c.text("text: Folders", (48, 448), "Folders", 24, MUTED)
    for i, (name, details) in enumerate((("Contracts", "6 files"), ("Leads", "18 files"))):
        x0, y0 = 48 + i * 348, 488
        x1, y1 = x0 + 324, y0 + 300
        c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=28, fill=CARD)
        c.add(f"row: {name}", "row", (x0, y0, x1, y1))
        _folder_icon(c, name, (x0 + x1) // 2 - 60, y0 + 36, 120)
        c.text(f"text: {name}", ((x0 + x1) // 2, y0 + 200), name, 24, anchor="mm")
        c.text(f"text: {name} details", ((x0 + x1) // 2, y0 + 244), details, 16, MUTED, anchor="mm")
    c.text("text: Files", (48, 840), "Files", 24, MUTED)
    for i, (name, extension, details) in enumerate(SALES_FILES):
        _file_row(c, 880 + i * 144, name, extension, details)
    _bottom_nav(c, "Files")


def _draw_file_menu(c: _Canvas) -> None:
    _draw_folder_sales(c)
    c.dim()
    sheet = (0, 1440, WIDTH, HEIGHT)
    c.forget_under(sheet)
    c.draw.rounded_rectangle((0, sheet[1], WIDTH - 1, HEIGHT + 60), radius=44, fill=(255, 255, 255))
    c.add("dialog: File options", "dialog", sheet)
    c.draw.rounded_rectangle((492, 1464, 587, 1475), radius=6, fill=DISABLED)
    c.add("icon: sheet handle", "icon", (492, 1464, 588, 1476))
    _file_icon(c, "menu icon: Q3 report.pdf", 48, 1512, 64, "pdf")
    c.text("menu title: Q3 report.pdf", (144, 1544), "Q3 report.pdf", 32, anchor="lm")
    c.draw.line((0, 1608, WIDTH, 1608), fill=LINE, width=2)
    entries = (("Share", "share"), ("Rename", "pencil"), ("Move", "move"), ("Download", "download"),
               ("Delete", "trash"))
    for i, (name, glyph) in enumerate(entries):
        y = 1624 + i * 128
        _small_glyph(c, glyph, 88, y + 64, 48, INK)
        c.draw.text((160, y + 64), name, font=_font(32), fill=INK, anchor="lm")
        c.add(f"button: {name}", "button", (0, y, WIDTH, y + 128), 32)


def _draw_share_dialog(c: _Canvas, alice_selected: bool) -> None:
    _draw_folder_sales(c)
    c.dim()
    _dialog_card(c, "dialog: Share", (60, 560, 1020, 1720))
    c.text('text: Share "Q3 report.pdf"', (108, 656), 'Share "Q3 report.pdf"', 32, anchor="ls")
    field = (108, 704, 972, 816)
    _text_field(c, "text_field: Add people or emails", field, "" if alice_selected else "Add people or emails",
                24, focused=False, placeholder=True)
    if alice_selected:
        c.draw.rounded_rectangle((128, 724, 380, 795), radius=36, fill=BLUE_LIGHT)
        c.text("text: chip Alice Chen", (254, 760), "Alice Chen", 24, BLUE, anchor="mm")
    c.text("text: Suggested", (108, 864), "Suggested", 16, MUTED)
    for i, (person, email, color) in enumerate(PEOPLE):
        y = 904 + i * 136
        if alice_selected and i == 0:
            c.draw.rectangle((60, y, 1019, y + 135), fill=BLUE_LIGHT)
        c.add(f"row: {person}", "row", (60, y, 1020, y + 136))
        _avatar(c, person, 108, y + 28, 80, color)
        c.text(f"text: {person}", (220, y + 68), person, 32, anchor="ls")
        c.text(f"text: {email}", (220, y + 84), email, 16, MUTED)
        _checkbox(c, f"icon: checkbox {person}", 916, y + 44, 48, checked=alice_selected and i == 0)
    c.text("text: access note", (108, 1368), "People you add can view and comment on this file.", 16, MUTED)
    c.text("text: selection count", (108, 1424),
           "1 person selected" if alice_selected else "No one selected yet", 24, INK if alice_selected else MUTED)
    _button(c, "Cancel", (500, 1568, 720, 1664), "flat")
    _button(c, "Confirm", (740, 1568, 972, 1664), "filled" if alice_selected else "disabled")


def _draw_new_folder(c: _Canvas, name: str) -> None:
    _draw_files_root(c)
    c.dim()
    c.forget_under((0, KEYBOARD_TOP, WIDTH, HEIGHT))
    _keyboard(c)
    _dialog_card(c, "dialog: New folder", (60, 760, 1020, 1320))
    c.text("text: New folder", (108, 856), "New folder", 32, anchor="ls")
    c.text("text: Create in My Drive", (108, 880), "Create in My Drive", 16, MUTED)
    _text_field(c, "text_field: Folder name", (108, 944, 972, 1056), name or "Folder name", 32 if name else 24,
                focused=True, placeholder=not name)
    _button(c, "Cancel", (500, 1168, 720, 1264), "flat")
    _button(c, "Confirm", (740, 1168, 972, 1264), "filled" if name else "disabled")


def _search_header(c: _Canvas, query: str) -> None:
    _status_bar(c)
    c.draw.rectangle((0, HEADER_BOX[1], WIDTH - 1, HEADER_BOX[3] - 1), fill=SURFACE)
    c.add("header: Search", "header", HEADER_BOX)
    _back_arrow(c, 72, 180, 56)
    c.add("button: Back", "button", (24, 132, 120, 228))
    field = (144, 128, 1044, 232)
    _text_field(c, "text_field: Search in Drive", field, query or "Search in Drive", 32, focused=True,
                placeholder=not query, radius=52)
    if query:
        cx, cy = 980, 180
        c.draw.line((cx - 16, cy - 16, cx + 16, cy + 16), fill=MUTED, width=5)
        c.draw.line((cx - 16, cy + 16, cx + 16, cy - 16), fill=MUTED, width=5)
        c.add("button: Clear search", "button", (948, 148, 1012, 212))


def _draw_search(c: _Canvas) -> None:
    _search_header(c, "")
    c.text("text: Recent searches", (48, 312), "Recent searches", 16, MUTED)
    for i, query in enumerate(("invoices", "contract template", "team photo")):
        y = 344 + i * 112
        c.add(f"row: recent search {query}", "row", (0, y, WIDTH, y + 112))
        _small_glyph(c, "clock", 68, y + 56, 40, MUTED)
        c.add(f"icon: recent search {query}", "icon", (48, y + 36, 88, y + 76))
        c.text(f"text: {query}", (128, y + 56), query, 24, anchor="lm")
    _keyboard(c)


def _draw_search_results(c: _Canvas) -> None:
    _search_header(c, "sales")
    c.text("text: result count", (48, 312), "3 results", 16, MUTED)
    results = (("Sales", None, "Folder in My Drive"),
               ("Sales kickoff.pptx", "pptx", "Slides in Marketing"),
               ("Sales targets.xlsx", "xlsx", "Spreadsheet in Finance"))
    for i, (name, extension, where) in enumerate(results):
        y = 344 + i * 120
        c.add(f"row: {name}", "row", (0, y, WIDTH, y + 120))
        if extension is None:
            _folder_icon(c, name, 48, y + 40, 40)
        else:
            _file_icon(c, f"file icon: {name}", 48, y + 40, 40, extension)
        c.text(f"text: {name}", (120, y + 64), name, 24, anchor="ls")
        c.text(f"text: {name} location", (120, y + 78), where, 12, MUTED)
        c.draw.line((120, y + 119, WIDTH, y + 119), fill=LINE, width=2)
    _keyboard(c)


def _draw_shared(c: _Canvas) -> None:
    _status_bar(c)
    _header(c, "Shared with me")
    c.text("text: Folders", (48, 304), "Folders", 24, MUTED)
    cards = (("Team offsite", "Bob Martin"), ("Design assets", "Carol Diaz"),
             ("Board meeting", "Alice Chen"), ("Budget 2025", "Bob Martin"))
    for i, (name, owner) in enumerate(cards):
        x0, y0 = 48 + (i % 2) * 516, 344 + (i // 2) * 432
        x1, y1 = x0 + 468, y0 + 400
        c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=32, fill=CARD)
        c.add(f"row: {name}", "row", (x0, y0, x1, y1))
        _folder_icon(c, name, (x0 + x1) // 2 - 100, y0 + 32, 200)
        c.text(f"text: {name}", ((x0 + x1) // 2, y0 + 300), name, 32, anchor="ms")
        c.text(f"text: {name} owner", ((x0 + x1) // 2, y0 + 320), f"Shared by {owner}", 16, MUTED, anchor="mt")
    c.text("text: Files", (48, 1236), "Files", 24, MUTED)
    files = (("Offsite agenda.pdf", "pdf", "Shared by Bob Martin, May 9"),
             ("Brand guide.pptx", "pptx", "Shared by Carol Diaz, Apr 22"))
    for i, (name, extension, details) in enumerate(files):
        _file_row(c, 1276 + i * 144, name, extension, details)
    _bottom_nav(c, "Shared")


SCREENS = (
    ("home", _draw_home),
    ("files_root", _draw_files_root),
    ("folder_sales", _draw_folder_sales),
    ("file_menu", _draw_file_menu),
    ("share_dialog", lambda c: _draw_share_dialog(c, alice_selected=False)),
    ("share_dialog_alice", lambda c: _draw_share_dialog(c, alice_selected=True)),
    ("new_folder_dialog", lambda c: _draw_new_folder(c, "")),
    ("new_folder_named", lambda c: _draw_new_folder(c, "Archive")),
    ("files_root_archive", lambda c: _draw_files_root(c, with_archive=True)),
    ("search", _draw_search),
    ("search_results", _draw_search_results),
    ("shared", _draw_shared),
)


# ---------------------------------------------------------------- trajectories

# (screen, action, target label or None, thinking); click/long_press coordinates come from the target.
TRAJECTORIES = (
    ("open_sales_folder", "Open CloudDrive and find the Sales folder", (
        ("home", {"action": "open", "text": APP_NAME}, None,
         "The home screen shows the app grid, with CloudDrive in the second row next to Maps. "
         "Launching CloudDrive by name is the quickest way into the user's files."),
        ("files_root", {"action": "click"}, "row: Sales",
         "CloudDrive opened on My Drive, which lists Sales, Marketing, Finance, Photos, Projects and Personal. "
         "Sales is the first folder row, so I tap it to open the folder."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The header now reads Sales and the screen shows the Contracts and Leads subfolders above files "
         "such as Q3 report.pdf. The Sales folder is open, so the task is complete."),
    )),
    ("share_q3_report_with_alice", "Share the Q3 report from Sales with Alice", (
        ("home", {"action": "click"}, "app icon: CloudDrive",
         "I am on the home screen and the blue CloudDrive icon sits at the start of the second app row. "
         "Tapping it opens the cloud drive where the Q3 report is stored."),
        ("files_root", {"action": "click"}, "row: Sales",
         "My Drive lists the top-level folders, and a Q3 sales report belongs in the Sales folder at the top. "
         "Opening Sales should show the report file."),
        ("folder_sales", {"action": "long_press"}, "row: Q3 report.pdf",
         "The Sales folder lists Q3 report.pdf as the first file, below the Contracts and Leads folders. "
         "A long press on that row opens its options, which include sharing."),
        ("file_menu", {"action": "click"}, "button: Share",
         "A sheet with options for Q3 report.pdf slid up, offering Share, Rename, Move, Download and Delete. "
         "Share is the option that lets me add Alice, so I tap it."),
        ("share_dialog", {"action": "click"}, "row: Alice Chen",
         "The share dialog suggests Alice Chen, Bob Martin and Carol Diaz, and the Confirm button is greyed out "
         "because nobody is selected. Alice Chen at alice@example.com is the person the task names, so I select "
         "her row."),
        ("share_dialog_alice", {"action": "click"}, "button: Confirm",
         "Alice Chen is now ticked, appears as a chip in the people field, and the Confirm button has turned "
         "blue. Tapping Confirm sends the share to her."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The dialog has closed and I am back in the Sales folder with Q3 report.pdf still listed first. "
         "The report was shared with Alice when I confirmed, so the task is done."),
    )),
    ("create_archive_folder", "Create a new folder named Archive in My Drive", (
        ("folder_sales", {"action": "system_button", "button": "back"}, None,
         "I am inside the Sales folder, but the Archive folder belongs at the top level of My Drive. "
         "Pressing the system back button returns to My Drive."),
        ("files_root", {"action": "click"}, "button: New folder",
         "My Drive is open with the Upload and New folder buttons above the list, and there is no Archive "
         "folder yet. Tapping New folder starts creating one here."),
        ("new_folder_dialog", {"action": "type", "text": "Archive"}, None,
         "A New folder dialog appeared with an empty Folder name field that already holds the cursor, and the "
         "keyboard is open. I type the requested name Archive."),
        ("new_folder_named", {"action": "click"}, "button: Confirm",
         "The Folder name field now contains Archive and the Confirm button has become active. "
         "Tapping Confirm creates the folder."),
        ("files_root_archive", {"action": "terminate", "status": "success"}, None,
         'A message at the bottom says Folder "Archive" created, and Archive now heads the My Drive list. '
         "The new folder exists, so the task is complete."),
    )),
    ("search_for_sales", "Search for 'sales' and open the Sales folder from the results", (
        ("files_root", {"action": "click"}, "button: Search",
         "My Drive shows the folder list, and the header has a magnifier button at its right end. "
         "Tapping it opens search so I can look for sales."),
        ("search", {"action": "type", "text": "sales"}, None,
         "The search screen shows an empty Search in Drive field with the cursor in it, a few recent searches "
         "and the keyboard. I type the query sales into the focused field."),
        ("search_results", {"action": "click"}, "row: Sales",
         "Three results match sales: the Sales folder in My Drive, Sales kickoff.pptx in Marketing and "
         "Sales targets.xlsx in Finance. The task wants the folder, so I tap the first result with the folder "
         "icon."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The Sales folder is open, showing its Contracts and Leads subfolders and the Q3 and Q2 reports. "
         "The search led to the right folder, so the task is complete."),
    )),
    ("browse_shared_with_me", "Close the file menu and see what others have shared with me", (
        ("file_menu", {"action": "swipe", "direction": "down"}, "icon: sheet handle",
         "An options sheet for Q3 report.pdf covers the lower half of the Sales folder, and none of its "
         "options is needed. Swiping the sheet down from its handle dismisses it."),
        ("folder_sales", {"action": "click"}, "tab: Shared",
         "The sheet is gone and the Sales folder is visible again, with the Files, Recent, Shared and Me tabs "
         "at the bottom. The Shared tab lists what other people have shared with me, so I tap it."),
        ("shared", {"action": "terminate", "status": "success"}, None,
         "The Shared with me screen shows the folders Team offsite, Design assets, Board meeting and Budget 2025, "
         "each with the name of whoever shared it. That is what the task asked to see, so I am done."),
    )),
)
POINTED_ACTIONS = ("click", "long_press")


# ---------------------------------------------------------------- generation and loading


def _generate(root: Path) -> None:
    (root / "screens").mkdir(parents=True)
    screens_json = []
    elements_by_screen: dict[str, dict[str, Element]] = {}
    for name, draw in SCREENS:
        canvas = _Canvas(name)
        draw(canvas)
        # compress_level 1: ~5x faster than the default, files stay small for these flat images
        canvas.image.save(root / "screens" / f"{name}.png", format="PNG", compress_level=1)
        elements_by_screen[name] = canvas.elements
        screens_json.append({"name": name, "image": f"screens/{name}.png", "width": WIDTH, "height": HEIGHT,
                             "elements": [e.to_json() for e in canvas.elements.values()]})

    trajectories_json = []
    for trajectory_id, task, steps in TRAJECTORIES:
        steps_json = []
        for screen, action, target_label, thinking in steps:
            action = dict(action)
            target = None
            if target_label is not None:
                target = elements_by_screen[screen][target_label]
                if action["action"] in POINTED_ACTIONS or action["action"] == "swipe":
                    action["coordinate"] = list(target.center)
                if action["action"] not in POINTED_ACTIONS:
                    target = None  # only click / long_press carry a target
            steps_json.append({"screenshot": screen, "image": f"screens/{screen}.png", "width": WIDTH,
                               "height": HEIGHT, "thinking": thinking, "action": action,
                               "target": target.to_json() if target else None})
        trajectories_json.append({"id": trajectory_id, "task": task, "app": APP_NAME, "steps": steps_json})

    _write_json(root / "screens.json", screens_json)
    _write_json(root / "trajectories.json", trajectories_json)
    _write_json(root / "manifest.json", {"version": DEMO_VERSION})  # last: marks the folder complete


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _load(root: Path) -> DemoData:
    """Read a finished demo folder; raises if anything is missing or malformed."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or manifest.get("version") != DEMO_VERSION:
        raise ValueError(f"demo manifest version {manifest!r} is not {DEMO_VERSION}")
    screens = []
    for item in json.loads((root / "screens.json").read_text(encoding="utf-8")):
        path = root / item["image"]
        if not path.is_file():
            raise FileNotFoundError(path)
        elements = tuple(Element.from_json(e) for e in item["elements"])
        screens.append(DemoScreen(item["name"], path, int(item["width"]), int(item["height"]), elements))
    names = {s.name for s in screens}
    trajectories = []
    for item in json.loads((root / "trajectories.json").read_text(encoding="utf-8")):
        steps = []
        for step in item["steps"]:
            if step["screenshot"] not in names:
                raise ValueError(f"step refers to unknown screen {step['screenshot']!r}")
            target = Element.from_json(step["target"]) if step["target"] else None
            steps.append(DemoStep(step["screenshot"], step["thinking"], step["action"], target))
        trajectories.append(DemoTrajectory(item["id"], item["task"], item["app"], tuple(steps)))
    return DemoData(root, tuple(screens), tuple(trajectories))


def _remove_stale_temp_folders(workspace: Path) -> None:
    """Delete leftovers of crashed generations (old enough that no live process still writes them)."""
    now = time.time()
    for path in workspace.iterdir():
        if path.name.startswith((_TMP_PREFIX, _STALE_PREFIX)) and path.is_dir():
            try:
                if now - path.stat().st_mtime > _STALE_TMP_AGE_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def ensure_demo_data(workspace: Path) -> DemoData:
    """Return the demo data under `workspace/demo`, generating it first if missing, stale or broken."""
    workspace = Path(workspace)
    root = workspace / _DEMO_DIR
    try:
        return _load(root)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass

    workspace.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_folders(workspace)
    staging = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=workspace))
    try:
        os.chmod(staging, 0o755)
        _generate(staging)
        for _ in range(5):
            try:
                os.rename(staging, root)  # atomic; fails if `root` exists and is not empty
                break
            except OSError:
                try:
                    return _load(root)  # another process finished first
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    pass
                # old or broken folder: move it aside, then retry the rename
                stale = Path(tempfile.mkdtemp(prefix=_STALE_PREFIX, dir=workspace))
                try:
                    os.rename(root, stale / _DEMO_DIR)
                except FileNotFoundError:
                    pass
                shutil.rmtree(stale, ignore_errors=True)
        return _load(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
