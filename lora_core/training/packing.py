"""Padding-free packing: the samples of a micro-batch laid end to end in one row, no token attending across a
sample border.

- Each sample keeps its own 3-D rope positions (the model's own `get_rope_index`, run on the CPU per sample
  and concatenated), so positions restart per sample exactly as in a one-by-one run.
- Attention (`packed_sdpa`, registered in transformers' AttentionInterface) is causal within each sample and
  nothing across: on a CUDA GPU one variable-length flash kernel over the row (torch's `varlen_attn`), else
  transformers' sdpa once per sample. Cost Σ Lᵢ², not L², and no mask tensor. A row of one sample is plain
  causal sdpa, the plain recipe's own call (on an H200 torch picks cuDNN's kernel for it, about 1.8× faster
  than varlen's flash kernel on ~6k tokens). Without segments it is plain sdpa, mask included, so evaluation
  and generation are unchanged.
- The vision tower runs under `packed_flash_vision`: "flash" in the name makes Qwen-VL's vision blocks pass
  cu_seqlens to the attention instead of splitting every image on the host (a GPU sync per layer); the
  collator precomputes those boundaries and the position-embedding interpolation on the CPU.
- The first label of every sample is ignored: the last token of one sample never learns the next one's first.
- Segment lengths, token and sample counts are Python ints made here, on the CPU: nothing on the hot path
  waits for the GPU.
"""
from __future__ import annotations

import inspect

from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.qwen.encoder import Encoded

PACKED_ATTENTION = "packed_sdpa"
PACKED_VISION_ATTENTION = "packed_flash_vision"
# Forwarded by the model's **kwargs down to every attention call (text): lengths as ints, boundaries as a tensor.
SEGMENTS_KEY, BOUNDARIES_KEY, LONGEST_KEY = "packed_segments", "packed_cu_seqlens", "packed_max_length"
ONE_SAMPLE_KEY = "packed_one_sample"  # a bool: a compiled block makes one graph for each value
PACKED_KEYS = (SEGMENTS_KEY, BOUNDARIES_KEY, LONGEST_KEY, ONE_SAMPLE_KEY)
IMAGES_KEY = "packed_images"  # ((screenshot key, visual tokens), ...) in pixel order: for the vision cache
VISION_ATTENTION_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def varlen_usable(query) -> bool:
    import torch

    if not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16):
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


VARLEN_TAKES_GQA = False  # set by register_packed_attention, outside any compiled code


def varlen_takes_gqa() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return False
    return "enable_gqa" in inspect.signature(varlen_attn).parameters


def varlen_attention(module, query, key, value, boundaries, longest: int, causal: bool, scaling):
    """(1, H, L, D) query/key/value, sequences marked by `boundaries` → (1, L, H, D), one flash kernel."""
    import torch
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = query[0].transpose(0, 1), key[0].transpose(0, 1), value[0].transpose(0, 1)
    extra = {}
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each key/value head serves a group of query heads
        if VARLEN_TAKES_GQA:
            extra["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    boundaries = boundaries.to(device=q.device, dtype=torch.int32)
    output = varlen_attn(q, k, v, boundaries, boundaries, longest, longest, scale=scaling,
                         window_size=(-1, 0) if causal else (-1, -1), **extra)
    return output[None]


def per_segment_sdpa(module, query, key, value, lengths, causal: bool, dropout, scaling, kwargs):
    """transformers' sdpa once per segment (CPU, fp32, or no varlen kernel)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    outputs, start = [], 0
    for length in lengths:
        if not length:  # a pack's unused slot
            continue
        end = start + length
        output, _ = sdpa_attention_forward(module, query[:, :, start:end], key[:, :, start:end],
                                           value[:, :, start:end], None, dropout=dropout, scaling=scaling,
                                           is_causal=causal, **kwargs)
        outputs.append(output)
        start = end
    return torch.cat(outputs, dim=1)


def register_packed_attention() -> None:
    """Register `packed_sdpa` (text) and `packed_flash_vision` with transformers (idempotent); masks are
    sdpa's own."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def packed_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                              is_causal=None, **kwargs):
        segments = kwargs.pop(SEGMENTS_KEY, None)
        boundaries, longest = kwargs.pop(BOUNDARIES_KEY, None), kwargs.pop(LONGEST_KEY, None)
        one_sample = kwargs.pop(ONE_SAMPLE_KEY, False)
        if boundaries is None or attention_mask is not None or not getattr(module, "is_causal", False):
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, is_causal=is_causal, **kwargs)
        if one_sample:
            return sdpa_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling,
                                          is_causal=True, **kwargs)
        if not (dropout and module.training) and varlen_usable(query):
            return varlen_attention(module, query, key, value, boundaries, longest, True, scaling), None
        if segments is None:  # compiled blocks get no Python lengths (they would recompile per pack)
            segments = (boundaries[1:] - boundaries[:-1]).tolist()
        return per_segment_sdpa(module, query, key, value, segments, True, dropout, scaling, kwargs), None

    def packed_vision_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                                is_causal=None, **kwargs):
        boundaries, _, longest, _ = (kwargs.pop(name, None) for name in VISION_ATTENTION_KEYS)
        for name in PACKED_KEYS:
            kwargs.pop(name, None)
        if boundaries is None:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, is_causal=is_causal, **kwargs)
        if not (dropout and module.training) and varlen_usable(query):
            return varlen_attention(module, query, key, value, boundaries, int(longest), False, scaling), None
        lengths = (boundaries[1:] - boundaries[:-1]).tolist()  # precomputed on the CPU: no sync there
        return per_segment_sdpa(module, query, key, value, lengths, False, dropout, scaling, kwargs), None

    global VARLEN_TAKES_GQA
    VARLEN_TAKES_GQA = varlen_takes_gqa()
    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)
    AttentionInterface.register(PACKED_VISION_ATTENTION, packed_vision_attention)
    AttentionMaskInterface.register(PACKED_VISION_ATTENTION, sdpa_mask)


def use_packed_attention(model) -> None:
    """Switch a loaded Qwen-VL model (PEFT-wrapped or not) to the packed attentions, text and vision."""
    register_packed_attention()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation({"text_config": PACKED_ATTENTION, "vision_config": PACKED_VISION_ATTENTION})


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
    """Each sample's 3-D rope positions (3, L) from the model's own `get_rope_index`, on the CPU, cached; and
    the vision tower's per-image inputs that would otherwise be computed on the GPU with host syncs."""

    def __init__(self, model, image_pad: int):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.inner = base.model  # Qwen3VLModel (or Qwen2.5-VL's), which owns get_rope_index
        self.parameters = inspect.signature(self.inner.get_rope_index).parameters
        self.image_pad = image_pad
        self.cache: dict[int, object] = {}
        visual = getattr(self.inner, "visual", None)
        self.interpolation = None
        if visual is not None and hasattr(visual, "num_grid_per_side"):
            self.interpolation = {"num_grid_per_side": visual.num_grid_per_side,
                                  "mode": getattr(visual, "interpolation_mode", "bilinear"),
                                  "align_corners": getattr(visual, "interpolation_align_corners", False),
                                  "spatial_merge_size": visual.config.spatial_merge_size}

    def vision_inputs(self, grids) -> dict:
        """Per-image attention boundaries (one frame each) and position-embedding interpolation, from the
        grids on the CPU; transformers' vision tower takes them precomputed under these names."""
        import torch

        grid = torch.cat(grids)
        patches = (grid[:, 0] * grid[:, 1] * grid[:, 2]).tolist()
        boundaries = [0]
        for count in patches:
            boundaries.append(boundaries[-1] + count)
        inputs = {"cu_seqlens": torch.tensor(boundaries, dtype=torch.int32), "max_seqlen": max(patches)}
        if self.interpolation is not None and int(grid[:, 0].max()) == 1:
            try:
                from transformers.vision_utils import get_vision_interpolation_indices_and_weights
            except ImportError:
                return inputs
            indices, weights = get_vision_interpolation_indices_and_weights(grid, **self.interpolation)
            inputs.update(interp_indices=indices, interp_weights=weights)
        return inputs

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


def fewer_packs_hint(per_device: int, accumulation: int, budget: int | None, median_tokens: float,
                     cuda: bool) -> str | None:
    """A line for a GPU run whose packs could hold more of the optimizer step's samples than a micro-batch
    gives them: each pack costs the host the same per-layer work, so fewer, fuller packs keep a GPU busier."""
    if not cuda or accumulation <= 1 or (budget is not None and budget < 2 * per_device * median_tokens):
        return None
    samples = per_device * accumulation
    held = f"{per_device} sample{'s' if per_device > 1 else ''}"
    return (f"packing: each micro-batch holds {held}, under half of what a pack may hold; "
            f"per_device_train_batch_size {samples} with "
            f"gradient_accumulation_steps 1 trains the same {samples} samples per optimizer step, with the same "
            f"loss normalisation, in fewer, fuller packs, which keep the GPU busier (docs/BENCHMARKS.md)")


def packed_row(items: list[Encoded], pixel_cache, rope: RopePositions, slots: int | None = None,
               longest: int | None = None, cached_images: frozenset = frozenset()) -> dict:
    """One row holding `items` end to end: ids, labels, rope positions, pixels, segment lengths.

    With `slots`, the boundaries always hold slots + 1 entries (unused slots are empty sequences at the end);
    `longest` bounds the segment lengths for the attention kernel: neither changes with the pack's sample count.
    When every screenshot of the row is in `cached_images` (the vision cache holds its tower output), the row's
    pixels are an empty tensor and the tower's inputs are left out."""
    import torch

    ids, labels, positions, pixels, grids, images = [], [], [], [], [], []
    screenshots = [(pixel_cache.key(path, geom), path, geom) for item in items
                   for path, geom in zip(item.sample.images, item.geometries)]
    cached = bool(screenshots) and all(key in cached_images for key, _, _ in screenshots)
    for item in items:
        item_grids = []
        for path, geom in zip(item.sample.images, item.geometries):
            if cached:  # the grid from the geometry: the screenshot need not even be decoded
                grid = torch.tensor([geom.grid_thw], dtype=torch.long)
            else:
                values, grid = pixel_cache.pixels(path, geom)
                pixels.append(values)
            item_grids.append(grid)
            images.append((pixel_cache.key(path, geom), geom.visual_tokens))
        grids += item_grids
        ids.append(torch.tensor(item.input_ids, dtype=torch.long))
        item_labels = torch.tensor(item.labels, dtype=torch.long)
        item_labels[0] = IGNORE_INDEX
        labels.append(item_labels)
        positions.append(rope(item, item_grids))
    row = {"input_ids": torch.cat(ids)[None], "labels": torch.cat(labels)[None],
           "position_ids": torch.cat(positions, dim=1).to(torch.long)[:, None, :]}
    # A pack of one sample has boundaries too (the same shapes for every pack); ONE_SAMPLE_KEY picks its kernel.
    lengths = [len(item.input_ids) for item in items]
    boundaries = [0]
    for length in lengths:
        boundaries.append(boundaries[-1] + length)
    boundaries += [boundaries[-1]] * max(0, (slots or 0) - len(lengths))
    row.update({SEGMENTS_KEY: tuple(lengths), BOUNDARIES_KEY: torch.tensor(boundaries, dtype=torch.int32),
                LONGEST_KEY: max(longest or 0, *lengths), ONE_SAMPLE_KEY: len(lengths) == 1})
    if grids:
        row["image_grid_thw"] = torch.cat(grids)
        row[IMAGES_KEY] = tuple(images)
        if cached:
            row["pixel_values"] = torch.empty((0, screenshots[0][2].settings.patch_values))
        else:
            row["pixel_values"] = torch.cat(pixels)
            row.update(rope.vision_inputs(grids))
    return row



def trained_token_count(items: list[Encoded]) -> int:
    """Tokens whose label is trained, as the loss counts them (a sample's first token never is)."""
    return sum(sum(1 for label in item.labels[1:] if label != IGNORE_INDEX) for item in items)
