"""The peer setting that comes closest to another recipe's image pads: what an export's notes recommend."""
from __future__ import annotations

from lora_core.qwen.recipes.base import Recipe

# the knob each peer sizes images with, and the step it is searched in
PEER_KNOBS = {"llamafactory": ("image_max_pixels", 32 * 32), "ms-swift": ("IMAGE_MAX_TOKEN_NUM", 1)}
FLOOR_KNOBS = {"llamafactory": "image_min_pixels", "ms-swift": "IMAGE_MIN_TOKEN_NUM"}  # the knob may not go below


def pads(recipe: Recipe, width: int, height: int) -> int | None:
    try:
        return recipe.geometry(width, height).visual_tokens
    except ValueError:
        return None


def nearest_setting(peer: Recipe, target_pads: int, width: int, height: int) -> tuple[int, int] | None:
    """(knob value, pads) under `peer` whose pad count is nearest `target_pads` for a width×height image.

    Pads grow with the knob, so a bisection finds the smallest value reaching the target; its neighbour below
    is checked too. Ties go to the smaller setting (fewer tokens)."""
    knob, step = PEER_KNOBS[peer.name]
    floor = max(1, -(-int(peer.options[FLOOR_KNOBS[peer.name]]) // step))
    low, high = floor, max(floor + 1, (width * height) // step * 4)
    while low < high:
        middle = (low + high) // 2
        count = pads(peer.replace(**{knob: middle * step}), width, height)
        if count is None:
            return None
        if count < target_pads:
            low = middle + 1
        else:
            high = middle
    candidates = []
    for units in (low - 1, low):
        if units >= floor:
            count = pads(peer.replace(**{knob: units * step}), width, height)
            if count is not None:
                candidates.append((abs(count - target_pads), units * step, count))
    if not candidates:
        return None
    _, value, count = min(candidates)
    return value, count
