"""The encoder: one object for "what the model sees".

Built once from a checkpoint folder and a recipe, it owns the tokenizer and chat template, the special token
ids (read from the tokenizer and the model config), the image settings and the pixel preprocessing (the
checkpoint's own image processor). `encode(sample)` gives ids, labels, each image's geometry and, on demand,
its pixels. The Lab, the Inspector, the audit, authoring, the trainer, evaluation and every CLI go through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

from lora_core.data.images import aspect_problem, image_warnings, open_screenshot, read_image_size
from lora_core.data.samples import Sample, SampleFormatError
from lora_core.qwen.chat import IGNORE_INDEX, RenderedChat, count_trained, pad_runs, render_chat
from lora_core.qwen.geometry import Geometry, ImageSettings
from lora_core.qwen.recipes import Recipe, make_recipe
from lora_core.qwen.special_tokens import SpecialTokens, read_special_tokens

DEFAULT_PLACEHOLDER_SIZE = (1080, 2400)  # MAI-UI's screenshots, for inline images given with no file


@dataclass
class Encoded:
    """One sample as the recipe's trainer feeds it to the model."""

    sample: Sample
    rendered: RenderedChat  # the checkpoint template's rendering, pads expanded
    geometries: list[Geometry]
    full_input_ids: list[int]
    full_labels: list[int]
    input_ids: list[int] | None  # None: the recipe drops the row
    labels: list[int] | None
    kept: list[int] | None  # positions of full_input_ids that are kept
    image_pad: int
    recipe: str
    max_length: int | None
    drop_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    placeholder_images: int = 0
    encoder: "Encoder | None" = field(default=None, repr=False)

    @property
    def dropped(self) -> bool:
        return self.input_ids is None

    @property
    def full_length(self) -> int:
        return len(self.full_input_ids)

    @property
    def truncated(self) -> bool:
        return self.dropped or len(self.input_ids) < self.full_length

    @property
    def cut(self) -> int | None:
        """The first full position that is not kept, None when everything is."""
        if self.kept is None:
            return 0
        if len(self.kept) == self.full_length:
            return None
        for index, position in enumerate(self.kept):
            if index != position:
                return index
        return len(self.kept)

    @property
    def trained_tokens(self) -> int:
        return count_trained(self.labels)

    @property
    def image_spans(self) -> list[tuple[int, int]]:
        """[start, end) of each image's pads in full_input_ids."""
        spans, start = [], None
        for index, token in enumerate(self.full_input_ids + [None]):
            if token == self.image_pad and start is None:
                start = index
            elif token != self.image_pad and start is not None:
                spans.append((start, index))
                start = None
        return spans

    @property
    def image_tokens(self) -> int:
        return sum(end - start for start, end in self.image_spans)

    @property
    def visual_tokens(self) -> int:
        return sum(g.visual_tokens for g in self.geometries)

    @property
    def image_pad_counts(self) -> list[int] | None:
        return None if self.dropped else pad_runs(self.input_ids, self.image_pad)

    @property
    def full_image_pad_counts(self) -> list[int]:
        return pad_runs(self.full_input_ids, self.image_pad)

    def cut_inside_image(self) -> int | None:
        """Index of the image whose pads the cut splits (its pad count and its visual features then disagree)."""
        if self.kept is None:
            return None
        kept = set(self.kept)
        for index, (start, end) in enumerate(self.image_spans):
            inside = sum(1 for position in range(start, end) if position in kept)
            if 0 < inside < end - start:
                return index
        return None

    def pixels(self):
        """(pixel_values, image_grid_thw) of the sample's images, made by the checkpoint's image processor."""
        if self.encoder is None:
            raise RuntimeError("This encoding has no encoder to make pixels with.")
        return self.encoder.sample_pixels(self)

    def as_dict(self) -> dict:
        return {
            "recipe": self.recipe,
            "input_ids": self.input_ids,
            "labels": self.labels,
            "image_pad_counts": self.image_pad_counts,
            "full_image_pad_counts": self.full_image_pad_counts,
            "dropped": self.dropped,
            "full_length": self.full_length,
            "length": None if self.dropped else len(self.input_ids),
            "truncated": self.truncated,
            "trained_tokens": self.trained_tokens,
            "visual_tokens": [g.visual_tokens for g in self.geometries],
            "image_geometry": [g.as_dict() for g in self.geometries],
        }


class Encoder:
    """Tokenizer, template, special ids, image settings and pixels of one checkpoint under one recipe."""

    def __init__(self, tokenizer, chat_template: str | None, recipe: Recipe, special: SpecialTokens,
                 checkpoint_path: Path | None = None, image_processor_config: dict | None = None):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.recipe = recipe
        self.special = special
        self.checkpoint_path = checkpoint_path
        self.image_processor_config = image_processor_config or {}

    # -- building

    @classmethod
    def from_checkpoint(cls, folder, recipe: str = "native", options: dict | None = None) -> "Encoder":
        base = checkpoint_encoder(str(Path(folder)))
        return base if recipe == "native" and not options else base.with_recipe(recipe, options)

    def with_recipe(self, name: str, options: dict | None = None) -> "Encoder":
        recipe = make_recipe(name, self.checkpoint_settings, options)
        return self.using(recipe)

    def with_options(self, **options) -> "Encoder":
        """The same recipe with some options changed (e.g. mode, max_length, max_dim under native)."""
        return self.using(self.recipe.replace(**options))

    def using(self, recipe: Recipe) -> "Encoder":
        """This checkpoint's encoder under another recipe object (same tokenizer and image processor)."""
        clone = Encoder(self.tokenizer, self.chat_template, recipe, self.special, self.checkpoint_path,
                        self.image_processor_config)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k == "image_processor"})
        return clone

    @property
    def checkpoint_settings(self) -> ImageSettings:
        return self.recipe.checkpoint

    @property
    def settings(self) -> ImageSettings:
        """The image settings this encoder sizes images with (the recipe's view of them)."""
        return self.recipe.image_settings

    @property
    def max_length(self) -> int | None:
        return self.recipe.max_length

    def key(self) -> tuple:
        return (str(self.checkpoint_path), id(self.tokenizer), self.recipe.key())

    # -- images

    def geometry(self, width: int, height: int) -> Geometry:
        """Resized size, grid and pad count of a width×height screenshot under this recipe."""
        return self.recipe.geometry(width, height)

    def image_geometry(self, path: Path) -> Geometry:
        return self.geometry(*read_image_size(path))

    @cached_property
    def image_processor(self):
        from lora_core.qwen.checkpoint import image_processor_from_config

        return image_processor_from_config(self.image_processor_config)

    def pixels(self, image, geom: Geometry):
        """(pixel_values, image_grid_thw) for one decoded image, resized as `geom` says, by the image processor."""
        from PIL import Image

        if (geom.pre_width, geom.pre_height) != image.size:
            image = image.resize((geom.pre_width, geom.pre_height), Image.Resampling.BICUBIC)
        if geom.processor_resizes:
            out = self.image_processor(images=[image], return_tensors="pt", size={
                "shortest_edge": geom.settings.min_pixels, "longest_edge": geom.settings.max_pixels})
        else:  # the recipe sized the image itself (ms-swift): the processor only normalises and patches it
            image = image.resize((geom.resized_width, geom.resized_height), Image.Resampling.BICUBIC)
            out = self.image_processor(images=[image], return_tensors="pt", do_resize=False)
        grid = tuple(int(v) for v in out["image_grid_thw"][0])
        if grid != tuple(geom.grid_thw):
            raise RuntimeError(f"The image processor made a {grid} grid but the geometry says {geom.grid_thw}; "
                               "ids and pixels would disagree.")
        return out["pixel_values"], out["image_grid_thw"]

    def model_view(self, image, geom: Geometry):
        """The image as the vision tower gets it: the processor's own resized pixels, un-normalised for display."""
        import numpy as np
        from PIL import Image

        values, grid = self.pixels(image.convert("RGB"), geom)
        processor = self.image_processor
        t, gh, gw = (int(v) for v in grid[0])
        merge, patch = int(processor.merge_size), int(processor.patch_size)
        temporal = int(processor.temporal_patch_size)
        patches = values.numpy().reshape(t, gh // merge, gw // merge, merge, merge, 3, temporal, patch, patch)
        frame = patches[0, :, :, :, :, :, 0]  # (gh/m, gw/m, m, m, C, p, p)
        frame = frame.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, gh * patch, gw * patch)
        mean = np.asarray(processor.image_mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(processor.image_std, dtype=np.float32).reshape(3, 1, 1)
        scale = float(getattr(processor, "rescale_factor", 1 / 255))
        pixels = (frame * std + mean) / scale
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(1, 2, 0), "RGB")

    def sample_pixels(self, encoded: Encoded):
        import torch

        values, grids = [], []
        for path, geom in zip(encoded.sample.images, encoded.geometries):
            if path is None:
                raise SampleFormatError("An inline image has no file to make pixels from; export the image files.")
            image = open_screenshot(Path(path), where=encoded.sample.where, max_aspect=None)  # sized by geom
            if image.size != (geom.width, geom.height):
                raise SampleFormatError(f"{Path(path).name} is {image.size[0]}×{image.size[1]} but was "
                                        f"{geom.width}×{geom.height} when encoded; the file changed.")
            pixel_values, grid = self.pixels(image, geom)
            values.append(pixel_values)
            grids.append(grid)
        if not values:
            return None, None
        return torch.cat(values), torch.cat(grids)

    # -- text

    def render(self, sample: Sample, geometries: Sequence[Geometry] | None = None,
               add_generation_prompt: bool = False) -> RenderedChat:
        if geometries is None:
            geometries = self.sample_geometries(sample)[0]
        return render_chat(sample.messages, self.tokenizer, geometries, self.special, self.chat_template,
                           add_generation_prompt)

    def sample_geometries(self, sample: Sample, placeholder_size: tuple[int, int] | None = None,
                          sizes: Sequence[tuple[int, int]] | None = None):
        """(geometries, placeholder count): from file headers (or `sizes`); inline images get `placeholder_size`."""
        if sizes is None:
            sizes = sample.image_sizes(tuple(placeholder_size) if placeholder_size else None)
        placeholders = sum(1 for path in sample.images if path is None)
        geometries = []
        for index, (width, height) in enumerate(sizes):
            try:
                geometries.append(self.geometry(width, height))
            except ValueError as error:
                path = sample.images[index]
                name = Path(path).name if path is not None else f"inline image {index + 1}"
                reason = aspect_problem(width, height, name) or str(error)
                raise SampleFormatError(f"{sample.where}, image {index + 1} ({name}): {reason}") from None
        return geometries, placeholders

    def encode(self, sample: Sample, placeholder_size: tuple[int, int] | None = None,
               rendered: RenderedChat | None = None, sizes: Sequence[tuple[int, int]] | None = None) -> Encoded:
        """Render, then let the recipe truncate and label: exactly what the recipe's trainer feeds the model."""
        geometries, placeholders = self.sample_geometries(sample, placeholder_size, sizes)
        if rendered is None:
            rendered = self.render(sample, geometries)
        result = self.recipe.encode(rendered, self.special)
        notes = list(result.notes) + self.recipe.sample_warnings(sample.messages)
        if self.recipe.name != "native":  # peers read the raw file: no EXIF orientation, no 16-bit scaling
            for path in dict.fromkeys(p for p in sample.images if p is not None):
                notes += image_warnings(path, self.recipe.title or self.recipe.name)
        return Encoded(sample, rendered, geometries, result.full_input_ids, result.full_labels, result.input_ids,
                       result.labels, result.kept, self.special.image_pad, self.recipe.name, self.max_length,
                       result.drop_reason, notes, placeholders, self)

    def prompt_ids(self, sample: Sample) -> tuple[list[int], list[Geometry]]:
        """Ids of the sample's messages up to the generation prompt (for generation)."""
        geometries, _ = self.sample_geometries(sample)
        rendered = self.render(sample, geometries, add_generation_prompt=True)
        return rendered.input_ids, geometries


@lru_cache(maxsize=8)
def checkpoint_encoder(folder: str) -> Encoder:
    """The native encoder of a checkpoint folder, built once per folder."""
    from lora_core.qwen.checkpoint import image_processor_config, load_tokenizer, read_json, read_model_info

    info = read_model_info(Path(folder))
    tokenizer = load_tokenizer(folder)
    model_config = read_json(Path(folder) / "config.json")
    special = read_special_tokens(tokenizer, model_config)
    return Encoder(tokenizer, info.chat_template, make_recipe("native", info.settings), special, Path(folder),
                   image_processor_config(Path(folder)))


__all__ = ["DEFAULT_PLACEHOLDER_SIZE", "Encoded", "Encoder", "IGNORE_INDEX", "checkpoint_encoder"]
