"""Image geometry of Qwen-VL vision towers: one function, transformers' own smart_resize.

Every number the app shows about "what the model sees" comes from `geometry()`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

QWEN3VL_PATCH_SIZE = 16
QWEN3VL_MERGE_SIZE = 2
QWEN3VL_TEMPORAL_PATCH_SIZE = 2
QWEN3VL_MIN_PIXELS = 65_536
QWEN3VL_MAX_PIXELS = 16_777_216
MAX_ASPECT_RATIO = 200


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' smart_resize (the torchvision-free module), imported on first use."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

    return hf_smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


@dataclass(frozen=True)
class ImageSettings:
    """How a screenshot is turned into visual tokens.

    max_dim is the seed's optional pre-resize of the longest side (aspect kept, never upscaled);
    the rest is the image processor's own configuration.
    """

    max_dim: int | None = None
    min_pixels: int = QWEN3VL_MIN_PIXELS
    max_pixels: int = QWEN3VL_MAX_PIXELS
    patch_size: int = QWEN3VL_PATCH_SIZE
    merge_size: int = QWEN3VL_MERGE_SIZE
    temporal_patch_size: int = QWEN3VL_TEMPORAL_PATCH_SIZE

    def __post_init__(self):
        if self.max_dim is not None and self.max_dim < 1:
            raise ValueError(f"max_dim must be a positive number of pixels, got {self.max_dim}.")
        if self.min_pixels < 1 or self.max_pixels < self.min_pixels:
            raise ValueError(
                f"min_pixels ({self.min_pixels}) must be positive and not above max_pixels ({self.max_pixels})."
            )
        if self.patch_size < 1 or self.merge_size < 1:
            raise ValueError("patch_size and merge_size must be positive.")

    @property
    def token_cell_size(self) -> int:
        """Side in resized pixels of the square one visual token covers."""
        return self.patch_size * self.merge_size

    @property
    def patch_values(self) -> int:
        """Values in one row of the processor's pixel_values: an RGB patch over the temporal patch's frames."""
        return 3 * self.temporal_patch_size * self.patch_size**2

    def with_(self, **changes) -> "ImageSettings":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """What a run records about its image settings (status.json, eval.json)."""
        return {"max_dim": self.max_dim, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
                "patch_size": self.patch_size, "merge_size": self.merge_size}

    def describe(self) -> str:
        parts = [f"max_dim {self.max_dim}" if self.max_dim else "no pre-resize"]
        parts.append(f"pixels {self.min_pixels:,}–{self.max_pixels:,}")
        parts.append(f"patch {self.patch_size}, merge {self.merge_size}")
        return ", ".join(parts)

    @classmethod
    def from_image_processor(cls, image_processor, max_dim: int | None = None) -> "ImageSettings":
        """Read the geometry a loaded transformers image processor implies."""
        size = getattr(image_processor, "size", None)
        if isinstance(size, dict):
            min_pixels, max_pixels = size.get("shortest_edge"), size.get("longest_edge")
        else:  # transformers' SizeDict
            min_pixels, max_pixels = getattr(size, "shortest_edge", None), getattr(size, "longest_edge", None)
        return cls(
            max_dim=max_dim,
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
            patch_size=int(image_processor.patch_size),
            merge_size=int(image_processor.merge_size),
            temporal_patch_size=int(getattr(image_processor, "temporal_patch_size", 2)),
        )

    @classmethod
    def from_processor_config(cls, config: dict, max_dim: int | None = None) -> "ImageSettings":
        """Read a preprocessor_config.json dict (both the `size` and the older min/max_pixels forms)."""
        size = config.get("size") or {}
        min_pixels = config.get("min_pixels") or size.get("shortest_edge") or size.get("min_pixels")
        max_pixels = config.get("max_pixels") or size.get("longest_edge") or size.get("max_pixels")
        if not (min_pixels and max_pixels and config.get("patch_size") and config.get("merge_size")):
            raise ValueError(
                "The processor config does not state patch_size, merge_size and a pixel budget; "
                "is this a Qwen-VL checkpoint?"
            )
        return cls(
            max_dim=max_dim,
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
            patch_size=int(config["patch_size"]),
            merge_size=int(config["merge_size"]),
            temporal_patch_size=int(config.get("temporal_patch_size", 2)),
        )


def pre_resize(width: int, height: int, max_dim: int | None) -> tuple[int, int]:
    """The seed's max_dim step: scale the longest side down to max_dim, keep aspect, never upscale.

    Sides are truncated like `int(side * scale)` (1080×2400 at 1024 gives 460×1024, as in the seed's table).
    """
    if not max_dim or max(width, height) <= max_dim:
        return width, height
    scale = max_dim / max(width, height)
    return max(1, int(width * scale)), max(1, int(height * scale))


@dataclass(frozen=True)
class Geometry:
    """What one screenshot becomes under one ImageSettings."""

    width: int
    height: int
    settings: ImageSettings
    pre_width: int
    pre_height: int
    resized_width: int
    resized_height: int
    processor_resizes: bool = True  # False: the recipe resized the image itself, the processor only patches it

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        p = self.settings.patch_size
        return (1, self.resized_height // p, self.resized_width // p)

    @property
    def patches(self) -> int:
        """Rows of pixel_values: the vision tower's patches before merging."""
        t, h, w = self.grid_thw
        return t * h * w

    @property
    def visual_tokens(self) -> int:
        return self.patches // (self.settings.merge_size**2)

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, cols) of visual-token cells."""
        cell = self.settings.token_cell_size
        return self.resized_height // cell, self.resized_width // cell

    @property
    def scale_x(self) -> float:
        """Resized pixels per original pixel, horizontally."""
        return self.resized_width / self.width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.height

    def grid_edges(self, step: int) -> tuple[list[float], list[float]]:
        """x and y edges, in original-screenshot pixels, of a grid of `step` resized pixels."""
        xs = [i * step / self.scale_x for i in range(self.resized_width // step + 1)]
        ys = [i * step / self.scale_y for i in range(self.resized_height // step + 1)]
        return xs, ys

    @cached_property
    def patch_edges(self) -> tuple[list[float], list[float]]:
        return self.grid_edges(self.settings.patch_size)

    @cached_property
    def token_cell_edges(self) -> tuple[list[float], list[float]]:
        return self.grid_edges(self.settings.token_cell_size)

    @property
    def token_cell_on_original(self) -> tuple[float, float]:
        """Width and height in original pixels that one visual token covers."""
        c = self.settings.token_cell_size
        return c / self.scale_x, c / self.scale_y

    def token_cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        cw, ch = self.token_cell_on_original
        return (col * cw, row * ch, (col + 1) * cw, (row + 1) * ch)

    def patch_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        p = self.settings.patch_size
        pw, ph = p / self.scale_x, p / self.scale_y
        return (col * pw, row * ph, (col + 1) * pw, (row + 1) * ph)

    def as_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "max_dim": self.settings.max_dim,
            "min_pixels": self.settings.min_pixels,
            "max_pixels": self.settings.max_pixels,
            "patch_size": self.settings.patch_size,
            "merge_size": self.settings.merge_size,
            "pre_resized_width": self.pre_width,
            "pre_resized_height": self.pre_height,
            "resized_width": self.resized_width,
            "resized_height": self.resized_height,
            "grid_thw": list(self.grid_thw),
            "visual_tokens": self.visual_tokens,
            "token_grid_rows": self.token_grid[0],
            "token_grid_cols": self.token_grid[1],
            "scale_x": self.scale_x,
            "scale_y": self.scale_y,
        }


def geometry(width: int, height: int, settings: ImageSettings | None = None) -> Geometry:
    """Resized size, grid and visual tokens of a width×height screenshot, as the processor computes them.

    Raises ValueError (transformers' own message) when the aspect ratio exceeds 200.
    """
    settings = settings or ImageSettings()
    if width < 1 or height < 1:
        raise ValueError(f"An image must be at least 1×1 pixels, got {width}×{height}.")
    pre_width, pre_height = pre_resize(width, height, settings.max_dim)
    resized_height, resized_width = smart_resize(
        pre_height,
        pre_width,
        factor=settings.token_cell_size,
        min_pixels=settings.min_pixels,
        max_pixels=settings.max_pixels,
    )
    return Geometry(width, height, settings, pre_width, pre_height, resized_width, resized_height)
