"""The demo app's screens (home, My Drive, Sales folder, menus, dialogs, search, shared), by name."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from demo.canvas import BLUE, BLUE_LIGHT, CARD, DISABLED, INK, LINE, MUTED, SURFACE, Canvas, font
from demo.model import APP_NAME, HEIGHT, WIDTH
from demo.widgets import (HEADER_BOX, KEYBOARD_TOP, app_icon, avatar, back_arrow, bottom_nav, button, checkbox,
                          dialog_card, file_icon, file_row, folder_icon, folder_row, header, keyboard, small_glyph,
                          status_bar, text_field)

# ---------------------------------------------------------------- what the drive holds

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


# ---------------------------------------------------------------- screens


def _draw_home(c: Canvas) -> None:
    top, bottom = np.array((28, 48, 110), float), np.array((132, 84, 168), float)
    t = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    gradient = np.broadcast_to((top + (bottom - top) * t).round().astype(np.uint8), (HEIGHT, WIDTH, 3))
    c.image.paste(Image.fromarray(np.ascontiguousarray(gradient), "RGB"))
    c.draw = ImageDraw.Draw(c.image)
    white = (255, 255, 255)
    status_bar(c, background=None, color=white)
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
        app_icon(c, name, cx - size // 2, y, size, color, glyph)
        c.text(f"text: {name}", (cx, y + size + 24), name, 24, white, anchor="mt")
    for i, (name, color, glyph) in enumerate(dock):
        app_icon(c, name, column_centres[i] - size // 2, 2080, size, color, glyph)


def _draw_files_root(c: Canvas, with_archive: bool = False) -> None:
    status_bar(c)
    header(c, "My Drive")
    button(c, "Upload", (48, 296, 360, 392), "filled", glyph="upload")
    button(c, "New folder", (384, 296, 744, 392), "outline", glyph="plus")
    c.text("text: Folders", (48, 448), "Folders", 24, MUTED)
    folders = ROOT_FOLDERS
    if with_archive:
        folders = (("Archive", "Empty, created just now"),) + folders
    for i, (name, details) in enumerate(folders):
        folder_row(c, 488 + i * 144, name, details)
    c.text("text: storage status", (48, 2196), "12.4 GB of 100 GB used. Last synced at 9:41.", 10, MUTED)
    bottom_nav(c, "Files")
    if with_archive:
        c.draw.rounded_rectangle((48, 2048, 1031, 2159), radius=20, fill=(50, 52, 56))
        c.add("dialog: Folder created", "dialog", (48, 2048, 1032, 2160))
        c.text("text: Folder created message", (88, 2104), 'Folder "Archive" created', 32,
               (255, 255, 255), anchor="lm")


def _draw_folder_sales(c: Canvas) -> None:
    status_bar(c)
    header(c, "Sales", back=True)
    button(c, "Upload", (48, 296, 360, 392), "filled", glyph="upload")
    button(c, "New folder", (384, 296, 744, 392), "outline", glyph="plus")
    c.text("text: Folders", (48, 448), "Folders", 24, MUTED)
    for i, (name, details) in enumerate((("Contracts", "6 files"), ("Leads", "18 files"))):
        x0, y0 = 48 + i * 348, 488
        x1, y1 = x0 + 324, y0 + 300
        c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=28, fill=CARD)
        c.add(f"row: {name}", "row", (x0, y0, x1, y1))
        folder_icon(c, name, (x0 + x1) // 2 - 60, y0 + 36, 120)
        c.text(f"text: {name}", ((x0 + x1) // 2, y0 + 200), name, 24, anchor="mm")
        c.text(f"text: {name} details", ((x0 + x1) // 2, y0 + 244), details, 16, MUTED, anchor="mm")
    c.text("text: Files", (48, 840), "Files", 24, MUTED)
    for i, (name, extension, details) in enumerate(SALES_FILES):
        file_row(c, 880 + i * 144, name, extension, details)
    bottom_nav(c, "Files")


def _draw_file_menu(c: Canvas) -> None:
    _draw_folder_sales(c)
    c.dim()
    sheet = (0, 1440, WIDTH, HEIGHT)
    c.forget_under(sheet)
    c.draw.rounded_rectangle((0, sheet[1], WIDTH - 1, HEIGHT + 60), radius=44, fill=(255, 255, 255))
    c.add("dialog: File options", "dialog", sheet)
    c.draw.rounded_rectangle((492, 1464, 587, 1475), radius=6, fill=DISABLED)
    c.add("icon: sheet handle", "icon", (492, 1464, 588, 1476))
    file_icon(c, "menu icon: Q3 report.pdf", 48, 1512, 64, "pdf")
    c.text("menu title: Q3 report.pdf", (144, 1544), "Q3 report.pdf", 32, anchor="lm")
    c.draw.line((0, 1608, WIDTH, 1608), fill=LINE, width=2)
    entries = (("Share", "share"), ("Rename", "pencil"), ("Move", "move"), ("Download", "download"),
               ("Delete", "trash"))
    for i, (name, glyph) in enumerate(entries):
        y = 1624 + i * 128
        small_glyph(c, glyph, 88, y + 64, 48, INK)
        c.draw.text((160, y + 64), name, font=font(32), fill=INK, anchor="lm")
        c.add(f"button: {name}", "button", (0, y, WIDTH, y + 128), 32)


def _draw_share_dialog(c: Canvas, alice_selected: bool) -> None:
    _draw_folder_sales(c)
    c.dim()
    dialog_card(c, "dialog: Share", (60, 560, 1020, 1720))
    c.text('text: Share "Q3 report.pdf"', (108, 656), 'Share "Q3 report.pdf"', 32, anchor="ls")
    field = (108, 704, 972, 816)
    text_field(c, "text_field: Add people or emails", field, "" if alice_selected else "Add people or emails",
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
        avatar(c, person, 108, y + 28, 80, color)
        c.text(f"text: {person}", (220, y + 68), person, 32, anchor="ls")
        c.text(f"text: {email}", (220, y + 84), email, 16, MUTED)
        checkbox(c, f"icon: checkbox {person}", 916, y + 44, 48, checked=alice_selected and i == 0)
    c.text("text: access note", (108, 1368), "People you add can view and comment on this file.", 16, MUTED)
    c.text("text: selection count", (108, 1424),
           "1 person selected" if alice_selected else "No one selected yet", 24, INK if alice_selected else MUTED)
    button(c, "Cancel", (500, 1568, 720, 1664), "flat")
    button(c, "Confirm", (740, 1568, 972, 1664), "filled" if alice_selected else "disabled")


def _draw_new_folder(c: Canvas, name: str) -> None:
    _draw_files_root(c)
    c.dim()
    c.forget_under((0, KEYBOARD_TOP, WIDTH, HEIGHT))
    keyboard(c)
    dialog_card(c, "dialog: New folder", (60, 760, 1020, 1320))
    c.text("text: New folder", (108, 856), "New folder", 32, anchor="ls")
    c.text("text: Create in My Drive", (108, 880), "Create in My Drive", 16, MUTED)
    text_field(c, "text_field: Folder name", (108, 944, 972, 1056), name or "Folder name", 32 if name else 24,
                focused=True, placeholder=not name)
    button(c, "Cancel", (500, 1168, 720, 1264), "flat")
    button(c, "Confirm", (740, 1168, 972, 1264), "filled" if name else "disabled")


def _search_header(c: Canvas, query: str) -> None:
    status_bar(c)
    c.draw.rectangle((0, HEADER_BOX[1], WIDTH - 1, HEADER_BOX[3] - 1), fill=SURFACE)
    c.add("header: Search", "header", HEADER_BOX)
    back_arrow(c, 72, 180, 56)
    c.add("button: Back", "button", (24, 132, 120, 228))
    field = (144, 128, 1044, 232)
    text_field(c, "text_field: Search in Drive", field, query or "Search in Drive", 32, focused=True,
                placeholder=not query, radius=52)
    if query:
        cx, cy = 980, 180
        c.draw.line((cx - 16, cy - 16, cx + 16, cy + 16), fill=MUTED, width=5)
        c.draw.line((cx - 16, cy + 16, cx + 16, cy - 16), fill=MUTED, width=5)
        c.add("button: Clear search", "button", (948, 148, 1012, 212))


def _draw_search(c: Canvas) -> None:
    _search_header(c, "")
    c.text("text: Recent searches", (48, 312), "Recent searches", 16, MUTED)
    for i, query in enumerate(("invoices", "contract template", "team photo")):
        y = 344 + i * 112
        c.add(f"row: recent search {query}", "row", (0, y, WIDTH, y + 112))
        small_glyph(c, "clock", 68, y + 56, 40, MUTED)
        c.add(f"icon: recent search {query}", "icon", (48, y + 36, 88, y + 76))
        c.text(f"text: {query}", (128, y + 56), query, 24, anchor="lm")
    keyboard(c)


def _draw_search_results(c: Canvas) -> None:
    _search_header(c, "sales")
    c.text("text: result count", (48, 312), "3 results", 16, MUTED)
    results = (("Sales", None, "Folder in My Drive"),
               ("Sales kickoff.pptx", "pptx", "Slides in Marketing"),
               ("Sales targets.xlsx", "xlsx", "Spreadsheet in Finance"))
    for i, (name, extension, where) in enumerate(results):
        y = 344 + i * 120
        c.add(f"row: {name}", "row", (0, y, WIDTH, y + 120))
        if extension is None:
            folder_icon(c, name, 48, y + 40, 40)
        else:
            file_icon(c, f"file icon: {name}", 48, y + 40, 40, extension)
        c.text(f"text: {name}", (120, y + 64), name, 24, anchor="ls")
        c.text(f"text: {name} location", (120, y + 78), where, 12, MUTED)
        c.draw.line((120, y + 119, WIDTH, y + 119), fill=LINE, width=2)
    keyboard(c)


def _draw_shared(c: Canvas) -> None:
    status_bar(c)
    header(c, "Shared with me")
    c.text("text: Folders", (48, 304), "Folders", 24, MUTED)
    cards = (("Team offsite", "Bob Martin"), ("Design assets", "Carol Diaz"),
             ("Board meeting", "Alice Chen"), ("Budget 2025", "Bob Martin"))
    for i, (name, owner) in enumerate(cards):
        x0, y0 = 48 + (i % 2) * 516, 344 + (i // 2) * 432
        x1, y1 = x0 + 468, y0 + 400
        c.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=32, fill=CARD)
        c.add(f"row: {name}", "row", (x0, y0, x1, y1))
        folder_icon(c, name, (x0 + x1) // 2 - 100, y0 + 32, 200)
        c.text(f"text: {name}", ((x0 + x1) // 2, y0 + 300), name, 32, anchor="ms")
        c.text(f"text: {name} owner", ((x0 + x1) // 2, y0 + 320), f"Shared by {owner}", 16, MUTED, anchor="mt")
    c.text("text: Files", (48, 1236), "Files", 24, MUTED)
    files = (("Offsite agenda.pdf", "pdf", "Shared by Bob Martin, May 9"),
             ("Brand guide.pptx", "pptx", "Shared by Carol Diaz, Apr 22"))
    for i, (name, extension, details) in enumerate(files):
        file_row(c, 1276 + i * 144, name, extension, details)
    bottom_nav(c, "Shared")


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
