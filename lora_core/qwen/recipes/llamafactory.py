"""`llamafactory`: what LLaMA-Factory 0.9.5's sft data pipeline feeds Qwen3-VL (rules in ../shared/PEERS.md).

Images: a pre-shrink to image_max_pixels (sides truncated), a 28-px floor and 180:1 clamp, then the checkpoint
processor's smart_resize. Text: (source, target) pairs, an optional trained empty think block (template qwen3_vl),
each pair cut from its end by `infer_seqlen` to share cutoff_len; the row is never dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from lora_core.qwen.chat import IGNORE_INDEX, LabelMode, RenderedChat, find_assistant_turns
from lora_core.qwen.geometry import Geometry, ImageSettings, geometry
from lora_core.qwen.recipes.base import OptionSpec, Recipe, RecipeEncoding, RecipeError, block_roles
from lora_core.qwen.special_tokens import SpecialTokens

SIDE_FLOOR = 28  # Qwen2VLPlugin: a side under 28 px becomes 28
MAX_ASPECT = 200  # above this, the long side is clamped to CLAMPED_ASPECT × the short one
CLAMPED_ASPECT = 180
PHONE_SCREENSHOT = (1080, 2400)
SMALL_ICON = (64, 64)


def infer_seqlen(source_len: int, target_len: int, budget: int) -> tuple[int, int]:
    """How much of a (source, target) pair fits `budget`: a short target keeps whole, else a short source, else both
    shrink in proportion."""
    if target_len * 2 < budget:
        target_room = budget
    elif source_len * 2 < budget:
        target_room = budget - source_len
    else:
        target_room = int(budget * (target_len / (source_len + target_len)))
    new_target = min(target_room, target_len)
    new_source = min(max(budget - new_target, 0), source_len)
    return new_source, new_target


@dataclass
class Part:
    """A source or target of one pair, placed in the full ids."""

    start: int
    length: int
    trained: bool


class LlamaFactoryRecipe(Recipe):
    name = "llamafactory"
    title = "LLaMA-Factory 0.9.5"
    option_specs = (
        OptionSpec("template", "qwen3_vl_nothink", "choice", ("qwen3_vl_nothink", "qwen3_vl"),
                   "LLaMA-Factory has no default; qwen3_vl adds a trained empty think block to answers"),
        OptionSpec("mask_history", False, "bool", help="train only the last answer (and keep it first when cutting)"),
        OptionSpec("image_max_pixels", 768 * 768, "int", help="pre-shrink larger images to this many pixels"),
        OptionSpec("image_min_pixels", 32 * 32, "int", help="pre-enlarge smaller images to this many pixels"),
        OptionSpec("cutoff_len", 2048, "int", help="cut every row to at most this many tokens (never dropped)"),
        OptionSpec("train_on_prompt", False, "bool", help="only false is supported"),
    )
    native_equivalents = {"max_length": "cutoff_len", "max_pixels": "image_max_pixels",
                          "min_pixels": "image_min_pixels", "mode": "mask_history"}

    def validate(self) -> None:
        if self.options["train_on_prompt"]:
            raise RecipeError("The llamafactory recipe supports only train_on_prompt false: it never trains the "
                              "system and user turns.")

    @property
    def thinks(self) -> bool:
        return self.options["template"] == "qwen3_vl"

    @property
    def label_mode(self) -> LabelMode:
        return LabelMode.LAST if self.options["mask_history"] else LabelMode.ALL

    @property
    def max_length(self) -> int:
        return self.options["cutoff_len"]

    @property
    def image_settings(self) -> ImageSettings:
        return self.checkpoint.with_(max_dim=None)

    # -- images

    def pre_shrink(self, width: int, height: int) -> tuple[int, int]:
        """LLaMA-Factory's own resize before the processor: pixel budget (truncated sides), 28-px floor, 180:1 clamp."""
        most, least = self.options["image_max_pixels"], self.options["image_min_pixels"]
        if width * height > most:
            factor = math.sqrt(most / (width * height))
            width, height = max(1, int(width * factor)), max(1, int(height * factor))
        if width * height < least:
            factor = math.sqrt(least / (width * height))
            width, height = int(width * factor), int(height * factor)
        if min(width, height) < SIDE_FLOOR:
            width, height = max(width, SIDE_FLOOR), max(height, SIDE_FLOOR)
        if width / height > MAX_ASPECT:
            width = height * CLAMPED_ASPECT
        if height / width > MAX_ASPECT:
            height = width * CLAMPED_ASPECT
        return width, height

    def geometry(self, width: int, height: int) -> Geometry:
        if width < 1 or height < 1:
            raise ValueError(f"An image must be at least 1×1 pixels, got {width}×{height}.")
        pre_width, pre_height = self.pre_shrink(width, height)
        processed = geometry(pre_width, pre_height, self.image_settings)
        return Geometry(width, height, self.image_settings, pre_width, pre_height,
                        processed.resized_width, processed.resized_height, processor_resizes=True)

    # -- text

    def shape_problem(self, input_ids: Sequence[int], special: SpecialTokens) -> str | None:
        """Why LLaMA-Factory's sharegpt reader would skip this conversation, None when it reads it."""
        roles = [role for _, role in block_roles(input_ids, special)]
        if roles and roles[0] == "system":
            roles = roles[1:]
        expected = ["user", "assistant"] * (len(roles) // 2)
        if not roles or len(roles) % 2 or roles != expected:
            shown = " → ".join(roles) or "nothing"
            return ("LLaMA-Factory skips this conversation: after an optional system message it needs user and "
                    f"assistant turns to alternate and end with an answer, and here they go {shown}.")
        return None

    def think_block(self, special: SpecialTokens) -> tuple[int, ...]:
        block = special.empty_think_block
        if block is None:
            raise RecipeError("Template qwen3_vl needs <think> and </think> tokens, and this tokenizer has none; "
                              "use template qwen3_vl_nothink.")
        return block

    def encode(self, rendered: RenderedChat, special: SpecialTokens) -> RecipeEncoding:
        ids = rendered.input_ids
        problem = self.shape_problem(ids, special)
        if problem:
            return RecipeEncoding(list(ids), [IGNORE_INDEX] * len(ids), None, None, None, drop_reason=problem)
        turns = find_assistant_turns(ids, special)
        mask_history = self.options["mask_history"]
        full_ids: list[int] = []
        full_labels: list[int] = []
        pairs: list[tuple[Part, Part]] = []
        previous_end = 0
        for index, turn in enumerate(turns):
            last = index == len(turns) - 1
            target_trained = last or not mask_history
            source = ids[previous_end:turn.ans_start]
            target = list(ids[turn.ans_start:turn.label_end])
            has_think = special.think_start in target or special.think_end in target
            if self.thinks and not has_think and (last or not mask_history):
                target = list(self.think_block(special)) + target
            source_part = Part(len(full_ids), len(source), False)
            target_part = Part(source_part.start + len(source), len(target), target_trained)
            full_ids += list(source) + target
            full_labels += [IGNORE_INDEX] * len(source) + (target if target_trained else [IGNORE_INDEX] * len(target))
            pairs.append((source_part, target_part))
            previous_end = turn.label_end
        kept = self.kept_positions(pairs)
        return RecipeEncoding(full_ids, full_labels, [full_ids[p] for p in kept], [full_labels[p] for p in kept], kept)

    def kept_positions(self, pairs: list[tuple[Part, Part]]) -> list[int]:
        """Pairs in order (last first under mask_history), each cut to the budget left; the head of each part stays."""
        cutoff = self.options["cutoff_len"]
        order = reversed(pairs) if self.options["mask_history"] else iter(pairs)
        total = 0
        kept: list[int] = []
        for source, target in order:
            if total >= cutoff:
                break
            source_len, target_len = infer_seqlen(source.length, target.length, cutoff - total)
            kept += range(source.start, source.start + source_len)
            kept += range(target.start, target.start + target_len)
            total += source_len + target_len
        return sorted(kept)

    # -- what a user would not expect

    def warnings(self) -> list[str]:
        notes = []
        if self.thinks:
            notes.append("Template qwen3_vl is a reasoning template: LLaMA-Factory inserts a trained "
                         "<think>\\n\\n</think>\\n\\n before every answer (only the last one under mask_history). "
                         "Use qwen3_vl_nothink for a non-reasoning model.")
        checkpoint = self.image_settings
        most, least = self.options["image_max_pixels"], self.options["image_min_pixels"]
        if most < checkpoint.max_pixels:
            ours = self.geometry(*PHONE_SCREENSHOT).visual_tokens
            model = geometry(*PHONE_SCREENSHOT, checkpoint).visual_tokens
            if ours != model:
                width, height = PHONE_SCREENSHOT
                notes.append(f"image_max_pixels {most:,} makes LLaMA-Factory shrink larger images before the "
                             f"processor: a {width}×{height} phone screenshot gets {ours:,} image pads where the "
                             f"model's own processor gives {model:,}.")
        elif most > checkpoint.max_pixels:
            notes.append(f"image_max_pixels {most:,} is above the checkpoint's max_pixels {checkpoint.max_pixels:,}; "
                         "the processor still caps every image there.")
        if least != self.option_default("image_min_pixels") and least < checkpoint.min_pixels:
            pads = self.geometry(*SMALL_ICON).visual_tokens
            notes.append(f"image_min_pixels {least:,} is below the checkpoint's min_pixels {checkpoint.min_pixels:,}; "
                         f"the processor still enlarges small images (a {SMALL_ICON[0]}×{SMALL_ICON[1]} icon gets "
                         f"{pads} pads).")
        notes.append(f"cutoff_len {self.options['cutoff_len']:,}: LLaMA-Factory cuts a longer row to exactly that "
                     "many tokens and never drops it, even mid-image (the image's pad count and features then "
                     "disagree).")
        return notes

    def sample_warnings(self, messages: Sequence[dict]) -> list[str]:
        if any(message.get("loss") is not None for message in messages):
            return ["LLaMA-Factory reads no per-message loss flag: the sample's loss: true/false marks are ignored "
                    "and " + ("only the last answer" if self.options["mask_history"] else "every answer")
                    + " is trained."]
        return []

    def option_default(self, name: str):
        return next(spec.default for spec in self.option_specs if spec.name == name)
