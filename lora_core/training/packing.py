"""Padding-free packing: the samples of a micro-batch laid end to end in one row, no token attending across a
sample border.

- Each sample keeps its own 3-D rope positions (the model's own `get_rope_index`, run on the CPU per sample
  and concatenated), so positions restart per sample exactly as in a one-by-one run.
- Attention is transformers' sdpa run once per sample (`packed_sdpa`, registered in transformers'
  AttentionInterface): causal within the sample, nothing across. Cost Σ Lᵢ², not L², and no mask tensor.
  Without `packed_segments` it is plain sdpa, mask included, so evaluation and generation are unchanged.
- The first label of every sample is ignored: the last token of one sample never learns the next one's first.
- Segment lengths, token and sample counts are Python ints made here, on the CPU: nothing on the hot path
  waits for the GPU.
"""
from __future__ import annotations

import inspect

from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.qwen.encoder import Encoded

PACKED_ATTENTION = "packed_sdpa"
SEGMENTS_KEY = "packed_segments"  # forwarded by the model's **kwargs down to every attention call


def register_packed_attention() -> str:
    """Register `packed_sdpa` with transformers (idempotent); its masks are sdpa's own."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def packed_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                              is_causal=None, **kwargs):
        import torch

        segments = kwargs.pop(SEGMENTS_KEY, None)
        if not segments or len(segments) < 2 or attention_mask is not None or not getattr(module, "is_causal", False):
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, is_causal=is_causal, **kwargs)
        outputs, start = [], 0
        for length in segments:
            end = start + length
            output, _ = sdpa_attention_forward(module, query[:, :, start:end], key[:, :, start:end],
                                               value[:, :, start:end], None, dropout=dropout, scaling=scaling,
                                               is_causal=True, **kwargs)
            outputs.append(output)
            start = end
        return torch.cat(outputs, dim=1), None

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)
    return PACKED_ATTENTION


def use_packed_attention(model) -> None:
    """Switch a loaded Qwen-VL model (PEFT-wrapped or not) to `packed_sdpa`, text and vision alike."""
    register_packed_attention()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(PACKED_ATTENTION)


def split_into_packs(lengths: list[int], max_tokens: int | None) -> list[list[int]]:
    """Indices grouped into packs of at most `max_tokens` tokens, first fit by decreasing length; a sample
    longer than the budget goes alone. No budget: one pack."""
    if not max_tokens:
        return [list(range(len(lengths)))]
    packs: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for number, left in enumerate(room):
            if lengths[index] <= left:
                packs[number].append(index)
                room[number] -= lengths[index]
                break
        else:
            packs.append([index])
            room.append(max_tokens - lengths[index])
    return [sorted(pack) for pack in packs]


class RopePositions:
    """Each sample's 3-D rope positions (3, L) from the model's own `get_rope_index`, on the CPU, cached."""

    def __init__(self, model, image_pad: int):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.inner = base.model  # Qwen3VLModel (or Qwen2.5-VL's), which owns get_rope_index
        self.parameters = inspect.signature(self.inner.get_rope_index).parameters
        self.image_pad = image_pad
        self.cache: dict[int, object] = {}

    def __call__(self, item: Encoded, grids):
        import torch

        key = id(item)
        if key not in self.cache:
            ids = torch.tensor(item.input_ids, dtype=torch.long)[None]
            arguments = {"input_ids": ids, "image_grid_thw": torch.cat(grids) if grids else None,
                         "attention_mask": torch.ones_like(ids)}
            if "mm_token_type_ids" in self.parameters:
                arguments["mm_token_type_ids"] = (ids == self.image_pad).to(torch.int32)
            with torch.no_grad():
                positions, _ = self.inner.get_rope_index(**arguments)
            self.cache[key] = positions[:, 0, :].to(torch.int32)
        return self.cache[key]


def packed_row(items: list[Encoded], pixel_cache, rope: RopePositions) -> dict:
    """One row holding `items` end to end: ids, labels, rope positions, pixels, segment lengths."""
    import torch

    ids, labels, positions, pixels, grids = [], [], [], [], []
    for item in items:
        item_grids = []
        for path, geom in zip(item.sample.images, item.geometries):
            values, grid = pixel_cache.pixels(path, geom)
            pixels.append(values)
            item_grids.append(grid)
        grids += item_grids
        ids.append(torch.tensor(item.input_ids, dtype=torch.long))
        item_labels = torch.tensor(item.labels, dtype=torch.long)
        item_labels[0] = IGNORE_INDEX
        labels.append(item_labels)
        positions.append(rope(item, item_grids))
    row = {"input_ids": torch.cat(ids)[None], "labels": torch.cat(labels)[None],
           "position_ids": torch.cat(positions, dim=1).to(torch.long)[:, None, :]}
    if len(items) > 1:
        row[SEGMENTS_KEY] = tuple(len(item.input_ids) for item in items)
    if pixels:
        row["pixel_values"] = torch.cat(pixels)
        row["image_grid_thw"] = torch.cat(grids)
    return row


def trained_token_count(items: list[Encoded]) -> int:
    """Tokens whose label is trained, as the loss counts them (a sample's first token never is)."""
    return sum(sum(1 for label in item.labels[1:] if label != IGNORE_INDEX) for item in items)
