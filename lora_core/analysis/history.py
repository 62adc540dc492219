"""What a sample's history costs in tokens, and what fewer screenshots or fewer steps would save."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from lora_core.analysis.masking import MaskAnalysis, block_starts, render_cached
from lora_core.analysis.token_view import token_roles
from lora_core.data.samples import Sample
from lora_core.qwen.encoder import Encoder


@dataclass(frozen=True)
class Variant:
    """The same sample re-rendered with less history."""

    label: str
    kept: int
    length: int
    saved: int
    fits: bool


@dataclass
class HistoryCost:
    parts: list[tuple[str, int]]  # (what, tokens), in sequence order
    history_tokens: int
    history_images: int  # screenshots before the current turn (the instruction's included)
    history_steps: int  # assistant answers before the current turn
    screenshot_variants: list[Variant] = field(default_factory=list)
    step_variants: list[Variant] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class Layout:
    """Where the instruction, the history, the current turn and the target sit among the messages."""

    head_end: int  # messages[:head_end]: system prompt(s) and the instruction
    current_start: int  # messages[current_start:target]: the current turn (screenshot, question)
    target: int | None  # index of the final assistant message, None if the sample ends on a user turn
    steps: list[tuple[int, int]]  # history steps: [start, end) of messages, each ending with an answer


def sample_layout(messages: Sequence[dict]) -> Layout:
    count = len(messages)
    head_end = 0
    while head_end < count and messages[head_end].get("role") == "system":
        head_end += 1
    if head_end < count and messages[head_end].get("role") == "user":
        head_end += 1
    target = count - 1 if count and messages[-1].get("role") == "assistant" else None
    current_start = target if target is not None else count
    while current_start > head_end and messages[current_start - 1].get("role") != "assistant":
        current_start -= 1
    steps, start = [], head_end
    for index in range(head_end, current_start):
        if messages[index].get("role") == "assistant":
            steps.append((start, index + 1))
            start = index + 1
    return Layout(head_end, current_start, target, steps)


def image_positions(messages: Sequence[dict]) -> list[int]:
    """The message index of each image, in order."""
    return [
        index
        for index, message in enumerate(messages)
        if isinstance(message.get("content"), list)
        for item in message["content"]
        if item.get("type") in ("image", "image_url")
    ]


def without_images(messages: Sequence[dict], sizes: Sequence, drop: set[int]) -> tuple[list[dict], list]:
    """Remove the images numbered in `drop` (0-based, in order); a user message left empty goes too."""
    result, kept_sizes, number = [], [], 0
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            result.append(message)
            continue
        items = []
        for item in content:
            if item.get("type") in ("image", "image_url"):
                if number not in drop:
                    items.append(item)
                    kept_sizes.append(sizes[number])
                number += 1
            else:
                items.append(item)
        if items or message.get("role") != "user":
            result.append({**message, "content": items})
    return result, kept_sizes


def spaced_counts(total: int, most: int = 6) -> list[int]:
    """Up to `most` values from total-1 down to 0, denser near 0."""
    if total <= most:
        return list(range(total - 1, -1, -1))
    values = {0, 1, 2, 3, total // 2, total - 1}
    return sorted((v for v in values if 0 <= v < total), reverse=True)


def history_cost(a: MaskAnalysis, encoder: Encoder) -> HistoryCost:
    """What the history costs in tokens and what fewer screenshots or fewer steps would save.

    Each variant is re-encoded by the encoder, so its length is the trainer's.
    """
    messages, ids = a.messages, a.ids
    layout = sample_layout(messages)
    blocks = block_starts(ids, a.special)
    geometries = a.encoded.geometries
    sample = a.encoded.sample

    def variant_length(variant_messages, variant_geometries) -> int:
        variant = Sample(variant_messages, [None] * len(variant_geometries), where=sample.where)
        rendered = render_cached(encoder, variant, variant_geometries)
        return len(encoder.recipe.encode(rendered, a.special).full_input_ids)

    note = None
    parts: list[tuple[str, int]] = []
    if len(blocks) == len(messages):
        bounds = blocks + [len(ids)]

        def tokens(first: int, last: int) -> int:  # messages[first:last]
            return bounds[last] - bounds[first] if last > first else 0

        def pads(first: int, last: int) -> int:
            low, high = bounds[first], bounds[last]
            return sum(min(end, high) - max(start, low) for start, end in a.image_spans
                       if start < high and end > low)

        system_end = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        history_start, history_end = layout.head_end, layout.current_start
        answers = sum(tokens(i, i + 1) for i in range(history_start, history_end) if messages[i].get("role") == "assistant")
        history_pads = pads(history_start, history_end)
        target_end = layout.target + 1 if layout.target is not None else len(messages)
        parts = [
            ("system prompt", tokens(0, system_end)),
            ("instruction", tokens(system_end, layout.head_end)),
            ("history answers", answers),
            ("history screenshots", history_pads),
            ("history, other turns", tokens(history_start, history_end) - answers - history_pads),
            ("current turn", tokens(layout.current_start, layout.target if layout.target is not None else len(messages))),
            ("target answer", tokens(layout.target, target_end) if layout.target is not None else 0),
        ]
        history_tokens = tokens(history_start, history_end)
    else:
        note = "The template merged some messages, so tokens are counted by role rather than by message."
        roles = token_roles(ids, a.special)
        for role in ("system", "user", "assistant"):
            parts.append((f"{role} turns", sum(1 for r, t in zip(roles, ids) if r == role and t != a.special.image_pad)))
        parts.append(("image pads", a.image_tokens))
        history_tokens = 0
    images_at = image_positions(messages)
    removable = [n for n, at in enumerate(images_at) if at < layout.current_start]
    cost = HistoryCost(parts, history_tokens, len(removable), len(layout.steps), note=note)
    full = len(ids)
    limit = a.max_length or float("inf")
    for keep in spaced_counts(len(removable)):
        drop = set(removable[: len(removable) - keep])
        variant, kept_geometries = without_images(messages, geometries, drop)
        length = variant_length(variant, kept_geometries)
        cost.screenshot_variants.append(Variant(f"keep the last {keep} earlier screenshot(s)", keep, length, full - length,
                                                length <= limit))
    for keep in spaced_counts(len(layout.steps)):
        dropped = layout.steps[: len(layout.steps) - keep]
        cut_from, cut_to = (dropped[0][0], dropped[-1][1]) if dropped else (layout.head_end, layout.head_end)
        drop_images = {n for n, at in enumerate(images_at) if cut_from <= at < cut_to}
        trimmed = list(messages[:cut_from]) + list(messages[cut_to:])
        kept_geometries = [g for n, g in enumerate(geometries) if n not in drop_images]
        length = variant_length(trimmed, kept_geometries)
        cost.step_variants.append(Variant(f"keep {keep} history step(s)", keep, length, full - length, length <= limit))
    return cost
