"""The drawing surface of one demo screenshot: palette, fonts, and a canvas that records each element's box."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from demo.model import HEIGHT, KINDS, WIDTH, Element

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
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def ink_box(text: str, size: int, xy: tuple[int, int], anchor: str) -> tuple[int, int, int, int]:
    """Exact box of the pixels `draw.text(xy, text, anchor=anchor)` will touch."""
    mask, (dx, dy) = font(size).getmask2(text, mode="L", anchor=anchor)
    left, top, right, bottom = mask.getbbox()
    x, y = xy
    return x + dx + left, y + dy + top, x + dx + right, y + dy + bottom


class Canvas:
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
        self.draw.text(xy, text, font=font(size), fill=fill, anchor=anchor)
        return self.add(label, "text", ink_box(text, size, xy, anchor), size)

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
