"""`native`: our trainer and the seed's rule (max_dim pre-resize, transformers' smart_resize, cut then label)."""
from __future__ import annotations

from functools import cached_property

from lora_core.qwen.chat import LabelMode, RenderedChat, build_labels, parse_label_mode
from lora_core.qwen.geometry import Geometry, ImageSettings, geometry
from lora_core.qwen.recipes.base import OptionSpec, Recipe, RecipeEncoding, RecipeError
from lora_core.qwen.special_tokens import SpecialTokens


class NativeRecipe(Recipe):
    name = "native"
    title = "native (our trainer, the seed's rule)"
    option_specs = (
        OptionSpec("mode", "last", "choice", ("last", "all"), "last: only the final answer; all: every answer"),
        OptionSpec("max_length", None, "int-or-none", help="cut the rendered ids here, then build the labels"),
        OptionSpec("max_dim", None, "int-or-none", help="pre-resize the longest side (never upscales)"),
        OptionSpec("min_pixels", None, "int-or-none", help="processor pixel budget, lower bound (checkpoint's)"),
        OptionSpec("max_pixels", None, "int-or-none", help="processor pixel budget, upper bound (checkpoint's)"),
    )

    native_equivalents = {name: name for name in ("mode", "max_length", "max_dim", "min_pixels", "max_pixels")}

    def validate(self) -> None:
        try:
            self.image_settings
        except ValueError as error:
            raise RecipeError(str(error)) from None

    @property
    def label_mode(self) -> LabelMode:
        return parse_label_mode(self.options["mode"])

    mode = label_mode

    @property
    def max_length(self) -> int | None:
        return self.options["max_length"]

    @cached_property
    def image_settings(self) -> ImageSettings:
        changes = {key: self.options[key] for key in ("max_dim", "min_pixels", "max_pixels")
                   if self.options[key] is not None}
        return self.checkpoint.with_(**changes)

    def geometry(self, width: int, height: int) -> Geometry:
        return geometry(width, height, self.image_settings)

    def encode(self, rendered: RenderedChat, special: SpecialTokens) -> RecipeEncoding:
        """The seed's order: cut at max_length first, then label, so an answer cut before <|im_end|> trains nothing."""
        full_ids = rendered.input_ids
        full_labels = build_labels(full_ids, special, self.mode, rendered.loss_overrides)
        limit = self.max_length
        if limit is None or len(full_ids) <= limit:
            return RecipeEncoding(full_ids, full_labels, list(full_ids), list(full_labels), list(range(len(full_ids))))
        ids = full_ids[:limit]
        labels = build_labels(ids, special, self.mode, rendered.loss_overrides)
        return RecipeEncoding(full_ids, full_labels, ids, labels, list(range(limit)))
