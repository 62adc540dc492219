"""Encoded samples → model batches: packed rows (training) or right-padded ones (evaluation, `packing: false`).

Pixels come from the encoder (the checkpoint's image processor), cached per screenshot, since screenshots repeat
across the samples of a trajectory. Only the positions whose next token is trained get logits. Every batch
carries its counts (`BATCH_COUNTS`) as Python ints, so progress, tokens/s and the loss normaliser need no GPU sync.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.qwen.encoder import Encoded, Encoder
from lora_core.training.failures import RunFailure

FULL_LOGITS_ENV = "LORA_TRAIN_FULL_LOGITS"  # benchmarks only: the model's own loss over every position
BATCH_COUNTS = ("input_tokens", "trained_tokens", "samples")  # ints beside the tensors; never reach the model


class PixelCache:
    """Screenshot → pixel patches, made by the encoder; kept in memory up to `max_bytes`."""

    def __init__(self, encoder: Encoder, max_bytes: int = 768 * 1024 * 1024):
        self.encoder = encoder
        self.max_bytes = max_bytes
        self.entries: OrderedDict = OrderedDict()
        self.bytes = 0

    @staticmethod
    def key(path, geom) -> tuple:
        """One screenshot at one size: the same pixels, and the same frozen vision tower output."""
        return str(path), geom.pre_width, geom.pre_height, geom.resized_width, geom.resized_height

    def pixels(self, path: Path, geom):
        from lora_core.data.images import open_screenshot

        key = self.key(path, geom)
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        image = open_screenshot(Path(path), max_aspect=None)  # the recipe's geometry has sized it
        if image.size != (geom.width, geom.height):
            raise RunFailure("bad data", f"{Path(path).name} is {image.size[0]}×{image.size[1]} but its header said "
                                         f"{geom.width}×{geom.height}; the file changed during the run.")
        value = self.encoder.pixels(image, geom)
        self.entries[key] = value
        self.bytes += value[0].numel() * value[0].element_size()
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, (old, _) = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        return value


def batch_for(items: list[Encoded], pixel_cache: PixelCache, with_labels: bool = True,
              token_types: bool = True, left_padded: bool = False) -> dict:
    """Padded ids, labels, attention mask, mm_token_type_ids and the images' pixel patches; padding on the
    right, or on the left for generation (`left_padded`)."""
    import torch

    special = pixel_cache.encoder.special
    length = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), length), special.pad, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    pixels, grids = [], []
    for row, item in enumerate(items):
        n = len(item.input_ids)
        span = slice(length - n, length) if left_padded else slice(0, n)
        ids[row, span] = torch.tensor(item.input_ids)
        labels[row, span] = torch.tensor(item.labels)
        mask[row, span] = 1
        for path, geom in zip(item.sample.images, item.geometries):
            values, grid = pixel_cache.pixels(path, geom)
            pixels.append(values)
            grids.append(grid)
    batch = {"input_ids": ids, "attention_mask": mask}
    if token_types:  # 1 marks image pads: transformers 5.2x needs them for Qwen3-VL's 3-D positions
        batch["mm_token_type_ids"] = (ids == special.image_pad).to(torch.int32) * mask.to(torch.int32)
    if with_labels:
        batch["labels"] = labels
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
        batch["image_grid_thw"] = torch.cat(grids)
    return batch


def trained_positions(labels):
    """Positions whose next token is trained (in any row of the batch): only these need logits.

    The model's own loss projects every position onto the 151,936-word vocabulary and then ignores all but
    the answer; projecting only these gives the same loss for a fraction of the time and memory. A 1-D index
    tensor is what every transformers 5 release accepts as `logits_to_keep`.
    """
    import torch

    trained = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return torch.nonzero(trained).flatten()


def batch_counts(items: list[Encoded]) -> dict:
    from lora_core.training.packing import trained_token_count

    return {"input_tokens": sum(len(item.input_ids) for item in items),
            "trained_tokens": trained_token_count(items), "samples": len(items)}


class Collator:
    """Right-padded batches (evaluation, and training with `packing: false`)."""

    def __init__(self, pixel_cache: PixelCache, token_types: bool = True):
        self.pixel_cache = pixel_cache
        self.token_types = token_types

    def __call__(self, items: list[Encoded]) -> dict:
        batch = batch_for(items, self.pixel_cache, token_types=self.token_types)
        if not os.environ.get(FULL_LOGITS_ENV):
            batch["trained_positions"] = trained_positions(batch["labels"])  # on the CPU: no GPU sync per step
        batch.update(batch_counts(items))
        return batch


class PackingCollator:
    """A micro-batch of samples → packs of at most `max_tokens` tokens each (lora_core.training.packing)."""

    def __init__(self, pixel_cache: PixelCache, rope, max_tokens: int | None, slots: int | None = None,
                 longest: int | None = None):
        """`slots` (samples a pack may hold) and `longest` (the run's longest sample) give every pack the same
        boundary shape and length bound, so packs of other sample counts need no new compiled graph for them."""
        self.pixel_cache, self.rope, self.max_tokens = pixel_cache, rope, max_tokens
        self.slots, self.longest = slots, longest
        self.cached_images: frozenset = frozenset()  # screenshots the vision cache holds: no pixels made for them

    def __call__(self, items: list[Encoded]) -> dict:
        from lora_core.training.packing import packed_row, split_into_packs

        packs = []
        for group in split_into_packs([len(item.input_ids) for item in items], self.max_tokens):
            row = packed_row([items[i] for i in group], self.pixel_cache, self.rope, self.slots, self.longest,
                             self.cached_images)
            row["trained_positions"] = trained_positions(row["labels"])
            packs.append(row)
        return {"packs": packs, **batch_counts(items)}

    def warm(self, items: list[Encoded]) -> None:
        """Pixels and rope positions of every item made now, in the main process: data-loader workers forked
        later start with them."""
        for item in items:
            grids = [self.pixel_cache.pixels(path, geom)[1] for path, geom in zip(item.sample.images, item.geometries)]
            self.rope(item, grids)


def takes_token_types(model) -> bool:
    """Whether this transformers release's Qwen-VL forward takes mm_token_type_ids."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "mm_token_type_ids" in inspect.signature(base.forward).parameters


class ItemDataset:
    """A plain sequence the Trainer can index; the collator does the work."""

    def __init__(self, items: list[Encoded]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]
