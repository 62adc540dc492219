"""Point conversions between the coordinate spaces GUI-agent datasets use.

- abs-original: pixels of the stored screenshot (what authoring stores)
- abs-resized:  pixels of the image the model sees (Qwen2.5-VL grounding, UI-TARS-1.5)
- norm1000:     x/width*1000 (Qwen3-VL grounding, MAI-UI grounding evaluation)
- norm999:      x/width*999 (MAI-UI's agent code)
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Frame(Protocol):
    """A screenshot and the size the model sees it at (a `Geometry` from the encoder)."""

    width: int
    height: int
    resized_width: int
    resized_height: int

    @property
    def scale_x(self) -> float: ...

    @property
    def scale_y(self) -> float: ...


@dataclass(frozen=True)
class OriginalFrame:
    """A screenshot taken as it is: enough for every space but abs-resized."""

    width: int
    height: int

    @property
    def resized_width(self) -> int:
        raise ValueError("abs-resized coordinates need the model's resized size; give the encoder's geometry.")

    resized_height = resized_width
    scale_x = resized_width
    scale_y = resized_width


class CoordSpace(str, Enum):
    ABS_ORIGINAL = "abs-original"
    ABS_RESIZED = "abs-resized"
    NORM1000 = "norm1000"
    NORM999 = "norm999"


NORM_SCALE = {CoordSpace.NORM1000: 1000, CoordSpace.NORM999: 999}


def parse_space(name: str | CoordSpace) -> CoordSpace:
    try:
        return CoordSpace(name)
    except ValueError:
        known = ", ".join(s.value for s in CoordSpace)
        raise ValueError(f"Unknown coordinate convention {name!r}; use one of: {known}.") from None


def space_extent(space: CoordSpace, geom: Frame) -> tuple[float, float]:
    """The largest valid x and y in a space."""
    if space is CoordSpace.ABS_ORIGINAL:
        return geom.width, geom.height
    if space is CoordSpace.ABS_RESIZED:
        return geom.resized_width, geom.resized_height
    scale = NORM_SCALE[space]
    return scale, scale


def check_in_range(x: float, y: float, space: CoordSpace, geom: Frame) -> None:
    if isinstance(x, bool) or isinstance(y, bool) or not all(isinstance(v, (int, float)) for v in (x, y)):
        raise ValueError(f"A coordinate must be two numbers, got [{x!r}, {y!r}].")
    max_x, max_y = space_extent(space, geom)
    if not (0 <= x <= max_x and 0 <= y <= max_y):
        raise ValueError(
            f"Point ({x}, {y}) is outside the {space.value} range 0–{max_x:g} × 0–{max_y:g} "
            f"of this {geom.width}×{geom.height} screenshot; check the coordinate convention."
        )


def to_original(x: float, y: float, space: CoordSpace | str, geom: Frame) -> tuple[float, float]:
    space = parse_space(space)
    check_in_range(x, y, space, geom)
    if space is CoordSpace.ABS_ORIGINAL:
        return float(x), float(y)
    if space is CoordSpace.ABS_RESIZED:
        return x / geom.scale_x, y / geom.scale_y
    scale = NORM_SCALE[space]
    return x * geom.width / scale, y * geom.height / scale


def from_original(x: float, y: float, space: CoordSpace | str, geom: Frame) -> tuple[float, float]:
    space = parse_space(space)
    check_in_range(x, y, CoordSpace.ABS_ORIGINAL, geom)
    if space is CoordSpace.ABS_ORIGINAL:
        return float(x), float(y)
    if space is CoordSpace.ABS_RESIZED:
        return x * geom.scale_x, y * geom.scale_y
    scale = NORM_SCALE[space]
    return x * scale / geom.width, y * scale / geom.height


def convert_point(x: float, y: float, src: CoordSpace | str, dst: CoordSpace | str, geom: Frame) -> tuple[float, float]:
    ox, oy = to_original(x, y, src, geom)
    return from_original(ox, oy, dst, geom)


def as_int_point(point: tuple[float, float], space: CoordSpace | str, geom: Frame) -> list[int]:
    """Round for export, clamped to the space's valid range."""
    max_x, max_y = space_extent(parse_space(space), geom)
    x, y = point
    return [int(min(max(round(x), 0), max_x)), int(min(max(round(y), 0), max_y))]


def token_cell_error(geom: Frame) -> tuple[float, float]:
    """Worst-case error in original pixels of a point known only to its visual-token cell.

    A point anywhere in a cell is best answered by the cell's centre; the worst case is half a cell
    along each axis.
    """
    cell_w, cell_h = geom.token_cell_on_original
    return cell_w / 2, cell_h / 2


def quantization_error(space: CoordSpace | str, geom: Frame) -> tuple[float, float]:
    """Worst-case error in original pixels from writing a point as integers in `space`."""
    space = parse_space(space)
    if space is CoordSpace.ABS_ORIGINAL:
        return 0.5, 0.5
    if space is CoordSpace.ABS_RESIZED:
        return 0.5 / geom.scale_x, 0.5 / geom.scale_y
    scale = NORM_SCALE[space]
    return 0.5 * geom.width / scale, 0.5 * geom.height / scale
