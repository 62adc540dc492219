"""The Resolution Lab's analysis: what a screenshot costs and loses under each ImageSettings.

Pure functions over sizes and boxes, plus drawing "the image as the model sees it" (the encoder's
processor pixels) with its grids. Every number comes from a recipe's geometry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw

from lora_core.data.coords import CoordSpace, quantization_error, token_cell_error
from lora_core.qwen.geometry import Geometry, ImageSettings
from lora_core.qwen.recipes import NativeRecipe, Recipe

DEFAULT_MAX_LENGTH = 6200  # the seed's training.sft.max_length
OFFICIAL_FT_MAX_PIXELS = 28 * 28 * 576  # Qwen3-VL's official fine-tuning default

# Seed §4.3.2 / §4.6: text ≥ 20 px (resized) reads clearly, 12–20 px is blurry, under 12 px is unreadable.
TEXT_CLEAR_PX = 20
TEXT_READABLE_PX = 12
# An element under one visual-token cell is lost; under four cells (2×2) it is blurry.
LOST_BELOW_CELLS = 1
BLURRY_BELOW_CELLS = 4


@dataclass(frozen=True)
class NamedSetting:
    """One column of the Lab: a label and the recipe that sizes the image."""

    key: str
    label: str
    recipe: Recipe

    @property
    def settings(self) -> ImageSettings:
        return self.recipe.image_settings

    def geometry(self, width: int, height: int) -> Geometry:
        return self.recipe.geometry(width, height)


def preset_settings(checkpoint: ImageSettings) -> list[NamedSetting]:
    """The Lab's presets under the native recipe, each on top of the checkpoint's own processor budget."""
    checkpoint = checkpoint.with_(max_dim=None)
    return [
        NamedSetting("max520", "max side 520", NativeRecipe(checkpoint, max_dim=520)),
        NamedSetting("max768", "max side 768", NativeRecipe(checkpoint, max_dim=768)),
        NamedSetting("max1024", "max side 1024", NativeRecipe(checkpoint, max_dim=1024)),
        NamedSetting("official", "official FT budget (max_pixels 28·28·576)",
                     NativeRecipe(checkpoint, max_pixels=OFFICIAL_FT_MAX_PIXELS)),
        NamedSetting("model", "model default", NativeRecipe(checkpoint)),
    ]


def recipe_presets(checkpoint: ImageSettings) -> list[NamedSetting]:
    """The peers at their own defaults, to set beside the native presets."""
    from lora_core.qwen.recipes import make_recipe

    checkpoint = checkpoint.with_(max_dim=None)
    return [
        NamedSetting("llamafactory", "LLaMA-Factory defaults (image_max_pixels 589,824)",
                     make_recipe("llamafactory", checkpoint)),
        NamedSetting("ms-swift", "ms-swift defaults (IMAGE_MAX_TOKEN_NUM 16384)", make_recipe("ms-swift", checkpoint)),
    ]


def lab_settings(checkpoint: ImageSettings) -> list[NamedSetting]:
    return preset_settings(checkpoint) + recipe_presets(checkpoint)


Box = tuple[float, float, float, float]


def normalize_box(box: Sequence[float]) -> Box:
    x0, y0, x1, y1 = box
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True)
class ElementReport:
    resized_width: float
    resized_height: float
    cells_wide: float
    cells_high: float
    verdict: str  # "lost", "blurry" or "ok"
    text_height: float | None  # resized pixels, text elements only
    text_verdict: str | None  # "clear", "blurry" or "unreadable"

    @property
    def cells(self) -> float:
        return self.cells_wide * self.cells_high


def element_report(geom: Geometry, box: Sequence[float], text_height: float | None = None) -> ElementReport:
    """Size of an element (box in original pixels) once resized, in pixels and in visual-token cells."""
    x0, y0, x1, y1 = normalize_box(box)
    cell = geom.settings.token_cell_size
    width, height = (x1 - x0) * geom.scale_x, (y1 - y0) * geom.scale_y
    cells = (width / cell) * (height / cell)
    verdict = "lost" if cells < LOST_BELOW_CELLS else "blurry" if cells < BLURRY_BELOW_CELLS else "ok"
    resized_text = text_verdict = None
    if text_height is not None:
        resized_text = text_height * geom.scale_y
        text_verdict = (
            "clear" if resized_text >= TEXT_CLEAR_PX else "blurry" if resized_text >= TEXT_READABLE_PX else "unreadable"
        )
    return ElementReport(width, height, width / cell, height / cell, verdict, resized_text, text_verdict)


@dataclass(frozen=True)
class ClickReport:
    cell_row: int
    cell_col: int
    worst_error: tuple[float, float]  # original px, half a token cell per axis
    worst_error_distance: float
    centre_error: float  # original px from the point to its cell's centre
    norm1000_rounding: tuple[float, float]  # original px lost by writing the point as integers 0–1000


def click_report(geom: Geometry, point: tuple[float, float]) -> ClickReport:
    """How precisely a point can be expressed when the model only resolves visual-token cells."""
    x, y = point
    cell_w, cell_h = geom.token_cell_on_original
    rows, cols = geom.token_grid
    col = min(int(x // cell_w), cols - 1)
    row = min(int(y // cell_h), rows - 1)
    centre = ((col + 0.5) * cell_w, (row + 0.5) * cell_h)
    worst = token_cell_error(geom)
    return ClickReport(
        row,
        col,
        worst,
        math.hypot(*worst),
        math.hypot(x - centre[0], y - centre[1]),
        quantization_error(CoordSpace.NORM1000, geom),
    )


@dataclass(frozen=True)
class SettingReport:
    setting: NamedSetting
    geometry: Geometry | None
    error: str | None
    share_of_max_length: float | None
    element: ElementReport | None
    click: ClickReport | None


def analyse(
    width: int,
    height: int,
    settings: Sequence[NamedSetting],
    max_length: int = DEFAULT_MAX_LENGTH,
    element_box: Sequence[float] | None = None,
    text_height: float | None = None,
    point: tuple[float, float] | None = None,
) -> list[SettingReport]:
    reports = []
    for named in settings:
        try:
            geom = named.geometry(width, height)
        except ValueError as error:
            reports.append(SettingReport(named, None, str(error), None, None, None))
            continue
        reports.append(
            SettingReport(
                named,
                geom,
                None,
                geom.visual_tokens / max_length if max_length else None,
                element_report(geom, element_box, text_height) if element_box else None,
                click_report(geom, point) if point else None,
            )
        )
    return reports


# --- rendering ----------------------------------------------------------------------------------

PATCH_LINE = (0, 170, 255, 90)
TOKEN_LINE = (255, 60, 60, 170)
BOX_COLOUR = (255, 200, 0, 255)
POINT_COLOUR = (0, 230, 90, 255)


def render_model_view(
    view: Image.Image,
    geom: Geometry,
    display_height: int = 960,
    show_patches: bool = True,
    show_tokens: bool = True,
    box: Sequence[float] | None = None,
    point: tuple[float, float] | None = None,
) -> Image.Image:
    """The model's view (`Encoder.model_view`) enlarged without smoothing, so lost detail stays visible,
    with its patch and token grids."""
    zoom = display_height / geom.resized_height
    display = view.resize(
        (max(1, round(geom.resized_width * zoom)), display_height),
        Image.Resampling.NEAREST if zoom >= 1 else Image.Resampling.BILINEAR,
    )
    overlay = Image.new("RGBA", display.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    p, cell = geom.settings.patch_size, geom.settings.token_cell_size
    grids = []
    if show_patches and p * zoom >= 3:  # denser than 3 display px is noise
        grids.append((p, PATCH_LINE, 1))
    if show_tokens:
        grids.append((cell, TOKEN_LINE, 1 if cell * zoom < 12 else 2))
    for step, colour, width in grids:
        for x in range(0, geom.resized_width + 1, step):
            draw.line([(x * zoom, 0), (x * zoom, display.height)], fill=colour, width=width)
        for y in range(0, geom.resized_height + 1, step):
            draw.line([(0, y * zoom), (display.width, y * zoom)], fill=colour, width=width)
    to_display_x, to_display_y = geom.scale_x * zoom, geom.scale_y * zoom
    if box:
        x0, y0, x1, y1 = normalize_box(box)
        draw.rectangle(
            [x0 * to_display_x, y0 * to_display_y, x1 * to_display_x, y1 * to_display_y], outline=BOX_COLOUR, width=3
        )
    if point:
        px, py = point[0] * to_display_x, point[1] * to_display_y
        draw.ellipse([px - 7, py - 7, px + 7, py + 7], outline=POINT_COLOUR, width=3)
        draw.line([(px - 12, py), (px + 12, py)], fill=POINT_COLOUR, width=2)
        draw.line([(px, py - 12), (px, py + 12)], fill=POINT_COLOUR, width=2)
    return Image.alpha_composite(display.convert("RGBA"), overlay).convert("RGB")


def mark_original(
    image: Image.Image, box: Sequence[float] | None = None, corner: tuple[float, float] | None = None,
    point: tuple[float, float] | None = None,
) -> Image.Image:
    """The screenshot as uploaded, with the marked element, a pending first corner and the click point."""
    if not (box or corner or point):
        return image
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    if box:
        draw.rectangle(list(normalize_box(box)), outline=BOX_COLOUR[:3], width=4)
    if corner:
        cx, cy = corner
        draw.line([(cx - 20, cy), (cx + 20, cy)], fill=BOX_COLOUR[:3], width=3)
        draw.line([(cx, cy - 20), (cx, cy + 20)], fill=BOX_COLOUR[:3], width=3)
    if point:
        px, py = point
        draw.ellipse([px - 12, py - 12, px + 12, py + 12], outline=POINT_COLOUR[:3], width=4)
    return marked


# --- datasets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallTarget:
    name: str
    label: str
    box: Box
    cells: float


def tokens_per_setting(sizes: Sequence[tuple[int, int]], settings: Sequence[NamedSetting]) -> dict[str, list[int]]:
    """Visual tokens of each image under each setting (sizes whose aspect ratio is refused are skipped)."""
    result = {}
    for named in settings:
        counts = []
        for width, height in sizes:
            try:
                counts.append(named.geometry(width, height).visual_tokens)
            except ValueError:
                continue
        result[named.key] = counts
    return result


def targets_under_one_cell(
    targets: Sequence[tuple[str, str, tuple[int, int], Sequence[float]]], setting: NamedSetting
) -> list[SmallTarget]:
    """Targets (name, label, (width, height), box) smaller than one visual-token cell under `setting`."""
    small = []
    for name, label, (width, height), box in targets:
        report = element_report(setting.geometry(width, height), box)
        if report.cells < LOST_BELOW_CELLS:
            small.append(SmallTarget(name, label, normalize_box(box), report.cells))
    return small
