"""Reusable parts of the demo app's screens: icons, bars, buttons, fields, dialogs, list rows, app icons."""

from __future__ import annotations

from demo.canvas import (BLUE, BLUE_LIGHT, DISABLED, FILE_COLORS, FOLDER_BODY, FOLDER_TAB, INK, LINE, MUTED, SURFACE,
                         Canvas, font)
from demo.model import HEIGHT, WIDTH, Element

# ---------------------------------------------------------------- icons


def folder_icon(c: Canvas, name: str, x: int, y: int, size: int) -> Element:
    s = size
    c.draw.rounded_rectangle((x, y + s * 0.12, x + s * 0.46, y + s * 0.4), radius=max(2, s // 14),
                             fill=FOLDER_TAB)
    c.draw.rounded_rectangle((x, y + s * 0.22, x + s - 1, y + s * 0.9), radius=max(2, s // 12),
                             fill=FOLDER_BODY)
    return c.add(f"folder icon: {name}", "icon", (x, y, x + s, y + s))


def file_icon(c: Canvas, label: str, x: int, y: int, size: int, extension: str) -> Element:
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


def magnifier(c: Canvas, cx: int, cy: int, size: int, color=INK) -> None:
    r = size * 0.3
    w = max(2, size // 12)
    c.draw.ellipse((cx - r - size * 0.1, cy - r - size * 0.1, cx + r - size * 0.1, cy + r - size * 0.1),
                   outline=color, width=w)
    c.draw.line((cx + size * 0.1, cy + size * 0.1, cx + size * 0.4, cy + size * 0.4), fill=color, width=w + 1)


def back_arrow(c: Canvas, cx: int, cy: int, size: int, color=INK) -> None:
    w = max(3, size // 10)
    half = size * 0.35
    c.draw.line((cx - half, cy, cx + half, cy), fill=color, width=w)
    c.draw.line((cx - half, cy, cx - half + size * 0.28, cy - size * 0.28), fill=color, width=w)
    c.draw.line((cx - half, cy, cx - half + size * 0.28, cy + size * 0.28), fill=color, width=w)


def avatar(c: Canvas, person: str, x: int, y: int, size: int, color) -> Element:
    c.draw.ellipse((x, y, x + size - 1, y + size - 1), fill=color)
    initials = "".join(part[0] for part in person.split())
    c.draw.text((x + size // 2, y + size // 2), initials, font=font(size // 3), fill=(255, 255, 255),
                anchor="mm")
    return c.add(f"icon: avatar {person}", "icon", (x, y, x + size, y + size))


def checkbox(c: Canvas, label: str, x: int, y: int, size: int, checked: bool) -> Element:
    if checked:
        c.draw.rounded_rectangle((x, y, x + size - 1, y + size - 1), radius=size // 6, fill=BLUE)
        c.draw.line([(x + size * 0.22, y + size * 0.52), (x + size * 0.42, y + size * 0.72),
                     (x + size * 0.78, y + size * 0.3)], fill=(255, 255, 255), width=max(3, size // 9))
    else:
        c.draw.rounded_rectangle((x, y, x + size - 1, y + size - 1), radius=size // 6, outline=MUTED,
                                 width=max(3, size // 14))
    return c.add(label, "icon", (x, y, x + size, y + size))


def small_glyph(c: Canvas, kind: str, cx: int, cy: int, size: int, color) -> None:
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


def app_icon(c: Canvas, name: str, x: int, y: int, size: int, color, glyph: str) -> None:
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
        small_glyph(c, "clock", cx, cy, 100, white)
    elif glyph == "pin":
        c.draw.ellipse((cx - 32, cy - 48, cx + 32, cy + 16), fill=white)
        c.draw.polygon([(cx - 28, cy), (cx + 28, cy), (cx, cy + 50)], fill=white)
        c.draw.ellipse((cx - 12, cy - 28, cx + 12, cy - 4), fill=color)
    elif glyph == "lines":
        for dy in (-30, 0, 30):
            c.draw.line((cx - 40, cy + dy, cx + 40, cy + dy), fill=white, width=10)
    c.add(f"app icon: {name}", "app_icon", (x, y, x + s, y + s))


# ---------------------------------------------------------------- shared widgets

STATUS_BOTTOM = 96
HEADER_BOX = (0, 96, WIDTH, 264)
NAV_TOP = 2232
TABS = (("Files", "folder"), ("Recent", "clock"), ("Shared", "people"), ("Me", "person"))
KEYBOARD_TOP = 1580


def status_bar(c: Canvas, background=SURFACE, color=INK) -> None:
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


def header(c: Canvas, title: str, back: bool = False, search: bool = True) -> None:
    c.draw.rectangle((0, HEADER_BOX[1], WIDTH - 1, HEADER_BOX[3] - 1), fill=SURFACE)
    c.add(f"header: {title}", "header", HEADER_BOX)
    title_x = 48
    if back:
        back_arrow(c, 72, 180, 56)
        c.add("button: Back", "button", (24, 132, 120, 228))
        title_x = 144
    c.text(f"text: {title}", (title_x, 180), title, 48, anchor="lm")
    if search:
        magnifier(c, 996, 180, 64)
        c.add("button: Search", "button", (948, 132, 1044, 228))


def bottom_nav(c: Canvas, selected: str) -> None:
    c.draw.rectangle((0, NAV_TOP, WIDTH - 1, HEIGHT - 1), fill=SURFACE)
    c.draw.line((0, NAV_TOP, WIDTH, NAV_TOP), fill=LINE, width=2)
    tab_width = WIDTH // len(TABS)
    for i, (name, glyph) in enumerate(TABS):
        cx = i * tab_width + tab_width // 2
        color = BLUE if name == selected else MUTED
        if name == selected:
            c.draw.rounded_rectangle((cx - 64, 2258, cx + 64, 2322), radius=32, fill=BLUE_LIGHT)
        small_glyph(c, glyph, cx, 2290, 52, color)
        c.draw.text((cx, 2356), name, font=font(24), fill=color, anchor="mm")
        c.add(f"tab: {name}", "tab", (i * tab_width, 2244, (i + 1) * tab_width, 2392), 24)


def button(c: Canvas, text: str, box, style: str = "filled", glyph: str | None = None,
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
        small_glyph(c, glyph, x0 + 56, (y0 + y1) // 2, 40, color)
        text_x += 28
    c.draw.text((text_x, (y0 + y1) // 2), text, font=font(size), fill=color, anchor="mm")
    return c.add(f"button: {text}", "button", box, size)


def keyboard(c: Canvas) -> None:
    c.draw.rectangle((0, KEYBOARD_TOP, WIDTH - 1, HEIGHT - 1), fill=(232, 234, 237))
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    key_w, key_h, gap = 96, 132, 12
    y = KEYBOARD_TOP + 40
    for r, keys in enumerate(rows):
        x = (WIDTH - (len(keys) * key_w + (len(keys) - 1) * gap)) // 2
        for key in keys:
            c.draw.rounded_rectangle((x, y, x + key_w, y + key_h), radius=12, fill=(255, 255, 255))
            c.draw.text((x + key_w // 2, y + key_h // 2), key, font=font(40), fill=INK, anchor="mm")
            x += key_w + gap
        if r == 2:  # shift and delete around the last row
            c.draw.rounded_rectangle((24, y, 124, y + key_h), radius=12, fill=(208, 211, 216))
            c.draw.rounded_rectangle((956, y, 1056, y + key_h), radius=12, fill=(208, 211, 216))
        y += key_h + 24
    c.draw.rounded_rectangle((24, y, 180, y + key_h), radius=12, fill=(208, 211, 216))
    c.draw.text((102, y + key_h // 2), "?123", font=font(32), fill=INK, anchor="mm")
    c.draw.rounded_rectangle((200, y, 820, y + key_h), radius=12, fill=(255, 255, 255))
    c.draw.rounded_rectangle((840, y, 1056, y + key_h), radius=12, fill=BLUE)
    small_glyph(c, "move", 948, y + key_h // 2, 56, (255, 255, 255))
    c.add("keyboard", "keyboard", (0, KEYBOARD_TOP, WIDTH, HEIGHT))


def text_field(c: Canvas, label: str, box, text: str, size: int, focused: bool,
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


def dialog_card(c: Canvas, label: str, box) -> Element:
    c.forget_under(box)
    c.draw.rounded_rectangle((box[0], box[1], box[2] - 1, box[3] - 1), radius=40, fill=(255, 255, 255))
    return c.add(label, "dialog", box)


# ---------------------------------------------------------------- list rows


def folder_row(c: Canvas, y: int, name: str, details: str) -> None:
    height = 144
    c.add(f"row: {name}", "row", (0, y, WIDTH, y + height))
    folder_icon(c, name, 48, y + 32, 80)
    c.text(f"text: {name}", (168, y + 76), name, 32, anchor="ls")
    c.text(f"text: {name} details", (168, y + 92), details, 16, MUTED, anchor="la")
    c.draw.line((168, y + height - 1, WIDTH, y + height - 1), fill=LINE, width=2)


def file_row(c: Canvas, y: int, name: str, extension: str, details: str) -> None:
    height = 144
    c.add(f"row: {name}", "row", (0, y, WIDTH, y + height))
    file_icon(c, f"file icon: {name}", 56, y + 40, 64, extension)
    c.text(f"text: {name}", (168, y + 76), name, 32, anchor="ls")
    c.text(f"text: {name} details", (168, y + 92), details, 12, MUTED, anchor="la")
    c.draw.line((168, y + height - 1, WIDTH, y + height - 1), fill=LINE, width=2)
