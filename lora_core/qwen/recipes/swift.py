"""`ms-swift`: what ms-swift 4.6.0's `swift sft` feeds Qwen3-VL (rules in ../shared/PEERS.md).

Images: qwen_vl_utils' own rounding with IMAGE_MIN/MAX_TOKEN_NUM·32² pixels (the checkpoint's processor config is
not used), then the processor with do_resize off. Labels: LossScale (a message's `loss` wins for answers; the final
<|im_end|>\\n is a suffix that is always trained). Truncation: a row over max_length is dropped (`delete`) or cut around
its image pads (`left` / `right`).
"""
from __future__ import annotations

import math
from typing import Sequence

from lora_core.qwen.chat import IGNORE_INDEX, LabelMode, RenderedChat, find_assistant_turns
from lora_core.qwen.geometry import Geometry, ImageSettings, geometry
from lora_core.qwen.recipes.base import (OptionSpec, Recipe, RecipeEncoding, RecipeError, block_roles,
                                         last_message_loss)
from lora_core.qwen.special_tokens import SpecialTokens

MAX_ASPECT = 200
PHONE_SCREENSHOT = (1080, 2400)
SMALL_IMAGE = (300, 168)


class SwiftRecipe(Recipe):
    name = "ms-swift"
    title = "ms-swift 4.6.0"
    option_specs = (
        OptionSpec("template", "qwen3_vl", "choice", ("qwen3_vl",), "ms-swift's Qwen3-VL template (no think block)"),
        OptionSpec("loss_scale", "default", "choice", ("default", "last_round"),
                   "default: every answer; last_round: only what follows the last user message"),
        OptionSpec("IMAGE_MIN_TOKEN_NUM", 4, "int", help="environment variable: least image pads (×32² pixels)"),
        OptionSpec("IMAGE_MAX_TOKEN_NUM", 16384, "int", help="environment variable: most image pads (×32² pixels)"),
        OptionSpec("max_length", None, "int-or-none", help="token limit; none: no limit"),
        OptionSpec("truncation_strategy", "delete", "choice", ("delete", "left", "right"),
                   "delete: drop a longer row; left/right: keep the image pads and the last/first other tokens"),
    )
    native_equivalents = {"max_length": "max_length", "max_pixels": "IMAGE_MAX_TOKEN_NUM",
                          "min_pixels": "IMAGE_MIN_TOKEN_NUM", "mode": "loss_scale"}

    def validate(self) -> None:
        least, most = self.options["IMAGE_MIN_TOKEN_NUM"], self.options["IMAGE_MAX_TOKEN_NUM"]
        if least > most:
            raise RecipeError(f"ms-swift needs IMAGE_MIN_TOKEN_NUM ({least}) not above IMAGE_MAX_TOKEN_NUM ({most}).")

    @property
    def label_mode(self) -> LabelMode:
        return LabelMode.LAST if self.options["loss_scale"] == "last_round" else LabelMode.ALL

    @property
    def max_length(self) -> int | None:
        return self.options["max_length"]

    @property
    def image_settings(self) -> ImageSettings:
        cell = self.checkpoint.token_cell_size ** 2
        return self.checkpoint.with_(max_dim=None, min_pixels=self.options["IMAGE_MIN_TOKEN_NUM"] * cell,
                                     max_pixels=self.options["IMAGE_MAX_TOKEN_NUM"] * cell)

    # -- images

    def resize(self, width: int, height: int) -> tuple[int, int]:
        """qwen_vl_utils' rounding: nearest multiple (at least one cell), floored to the max, ceiled to the min."""
        settings = self.image_settings
        factor = settings.token_cell_size
        if max(width, height) / min(width, height) > MAX_ASPECT:
            raise ValueError(f"ms-swift refuses an aspect ratio over {MAX_ASPECT}, got "
                             f"{max(width, height) / min(width, height)}.")
        new_height = max(factor, round(height / factor) * factor)
        new_width = max(factor, round(width / factor) * factor)
        if new_height * new_width > settings.max_pixels:
            beta = math.sqrt(height * width / settings.max_pixels)
            new_height = math.floor(height / beta / factor) * factor
            new_width = math.floor(width / beta / factor) * factor
        elif new_height * new_width < settings.min_pixels:
            beta = math.sqrt(settings.min_pixels / (height * width))
            new_height = math.ceil(height * beta / factor) * factor
            new_width = math.ceil(width * beta / factor) * factor
        if not new_width or not new_height:
            raise ValueError(f"ms-swift would resize this {width}×{height} image to {new_width}×{new_height} pixels "
                             "(its ceiling has no one-cell floor); raise IMAGE_MAX_TOKEN_NUM.")
        return new_width, new_height

    def geometry(self, width: int, height: int) -> Geometry:
        if width < 1 or height < 1:
            raise ValueError(f"An image must be at least 1×1 pixels, got {width}×{height}.")
        resized_width, resized_height = self.resize(width, height)
        return Geometry(width, height, self.image_settings, width, height, resized_width, resized_height,
                        processor_resizes=False)

    # -- text

    def labels(self, ids: Sequence[int], special: SpecialTokens, overrides: Sequence[bool | None]) -> list[int]:
        """LossScale: a message's `loss` wins for its answer; the final <|im_end|>\\n (the suffix) is always trained."""
        turns = find_assistant_turns(ids, special)
        user_starts = [position for position, role in block_roles(ids, special) if role == "user"]
        last_user = user_starts[-1] if user_starts else -1
        labels = [IGNORE_INDEX] * len(ids)
        for index, turn in enumerate(turns):
            if turn.ans_end is None:
                continue
            end = min(turn.label_end, len(ids))
            by_scale = self.options["loss_scale"] == "default" or turn.im_start > last_user
            override = overrides[index] if index < len(overrides) else None
            answer_trained = by_scale if override is None else bool(override)
            is_suffix = index == len(turns) - 1 and end == len(ids)
            if answer_trained:
                labels[turn.ans_start:turn.ans_end] = ids[turn.ans_start:turn.ans_end]
            if answer_trained or is_suffix:
                labels[turn.ans_end:end] = ids[turn.ans_end:end]
        return labels

    def encode(self, rendered: RenderedChat, special: SpecialTokens) -> RecipeEncoding:
        ids = list(rendered.input_ids)
        labels = self.labels(ids, special, rendered.loss_overrides)
        limit, strategy = self.max_length, self.options["truncation_strategy"]
        if limit is None or len(ids) <= limit:
            return RecipeEncoding(ids, labels, list(ids), list(labels), list(range(len(ids))))
        if strategy == "delete":
            reason = (f"ms-swift drops this row: it is {len(ids):,} tokens, over max_length {limit:,} "
                      "(truncation_strategy delete).")
            return RecipeEncoding(ids, labels, None, None, None, drop_reason=reason)
        protected = [p for p, token in enumerate(ids) if token in special.image_tokens]
        others = [p for p, token in enumerate(ids) if token not in special.image_tokens]
        room = limit - len(protected)
        chosen = (others[-room:] if strategy == "left" else others[:room]) if room > 0 else []
        kept = sorted(protected + chosen)
        kept_labels = [labels[p] for p in kept]
        if kept_labels:
            kept_labels[0] = IGNORE_INDEX
        notes = []
        if room <= 0:
            notes.append(f"The {len(protected):,} image pads alone reach max_length {limit:,}; ms-swift keeps them "
                         "all and nothing else.")
        return RecipeEncoding(ids, labels, [ids[p] for p in kept], kept_labels, kept, notes=notes)

    # -- what a user would not expect

    def warnings(self) -> list[str]:
        notes = []
        checkpoint, ours = self.checkpoint, self.image_settings
        if ours.min_pixels != checkpoint.min_pixels:
            swift_pads = self.geometry(*SMALL_IMAGE).visual_tokens
            model_pads = geometry(*SMALL_IMAGE, checkpoint.with_(max_dim=None)).visual_tokens
            notes.append(f"ms-swift ignores the checkpoint's min_pixels ({checkpoint.min_pixels:,}) and uses "
                         f"IMAGE_MIN_TOKEN_NUM·{checkpoint.token_cell_size}² = {ours.min_pixels:,} pixels: a "
                         f"{SMALL_IMAGE[0]}×{SMALL_IMAGE[1]} image gets {swift_pads} image pads where the model's own "
                         f"processor gives {model_pads}.")
        if ours.max_pixels != checkpoint.max_pixels:
            swift_pads = self.geometry(*PHONE_SCREENSHOT).visual_tokens
            model_pads = geometry(*PHONE_SCREENSHOT, checkpoint.with_(max_dim=None)).visual_tokens
            notes.append(f"ms-swift ignores the checkpoint's max_pixels ({checkpoint.max_pixels:,}) and uses "
                         f"IMAGE_MAX_TOKEN_NUM·{checkpoint.token_cell_size}² = {ours.max_pixels:,} pixels: a "
                         f"{PHONE_SCREENSHOT[0]}×{PHONE_SCREENSHOT[1]} screenshot gets {swift_pads:,} image pads "
                         f"where the model's own processor gives {model_pads:,}.")
        if self.non_default_options.keys() & {"IMAGE_MIN_TOKEN_NUM", "IMAGE_MAX_TOKEN_NUM"}:
            notes.append("IMAGE_MIN_TOKEN_NUM and IMAGE_MAX_TOKEN_NUM are environment variables, read once per "
                         "process: set them before `swift sft`, not as --flags.")
        if self.max_length is None:
            notes.append("max_length none means no limit here; the swift CLI fills max_length from the model's "
                         "max_model_len.")
        elif self.options["truncation_strategy"] == "delete":
            notes.append(f"truncation_strategy delete drops every row longer than max_length {self.max_length:,} "
                         "from training; nothing is cut.")
        else:
            notes.append(f"truncation_strategy {self.options['truncation_strategy']} keeps every image pad and cuts "
                         "other tokens, so an image can lose its <|vision_start|>/<|vision_end|> and the first "
                         "kept label is masked.")
        return notes

    def sample_warnings(self, messages: Sequence[dict]) -> list[str]:
        if last_message_loss(messages) is False:
            return ["The final answer says loss: false, but ms-swift still trains its <|im_end|>\\n (the "
                    "template's suffix ignores the flag)."]
        return []
