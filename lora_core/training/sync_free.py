"""training.sync_free: Qwen3-VL's multimodal forward without GPU→host syncs.

transformers' forward stops the host until the GPU catches up several times for each pack:
- it checks the image-token count against the image features (a tensor in a condition, and in an f-string);
- it adds the deepstack features by boolean-mask indexing: a nonzero in the forward pass and more in the backward,
  for each deepstack layer.

Each stop drains the GPU's queue: the GPU idles while the host launches the next kernels. The replacements give
the same values:
- The masks are the same, with no count check. The trainer checks each pack's count on the CPU before the pack
  reaches the GPU (`image_token_mismatch`).
- The deepstack features are added at positions found by `nonzero_static`, whose size (the feature rows) is
  known on the host.

They are installed on one model instance, and only where the release's methods take the arguments they expect.
"""
from __future__ import annotations

import inspect

PLACEHOLDER_PARAMETERS = ("input_ids", "inputs_embeds", "image_features", "video_features")
DEEPSTACK_PARAMETERS = ("hidden_states", "visual_pos_masks", "visual_embeds")


def takes(method, names: tuple[str, ...]) -> bool:
    try:
        return tuple(inspect.signature(method).parameters)[:len(names)] == names
    except (TypeError, ValueError):
        return False


def add_at_visual_positions(hidden_states, visual_pos_masks, visual_embeds):
    """`hidden_states` with `visual_embeds` added at the masked positions (one row per position, in order)."""
    import torch

    flat = hidden_states.reshape(-1, hidden_states.shape[-1])
    mask = visual_pos_masks.reshape(-1).to(flat.device)
    positions = torch.nonzero_static(mask, size=visual_embeds.shape[0]).squeeze(-1)
    return flat.index_add(0, positions, visual_embeds.to(flat.device, flat.dtype)).view_as(hidden_states)


def make_placeholder_masks(model, original):
    """get_placeholder_mask's (image mask, video mask) from the token ids, with no count check."""
    config = model.config

    def placeholder_masks(input_ids, inputs_embeds, image_features=None, video_features=None):
        if input_ids is None:  # masks found from embeddings: the release's own way
            return original(input_ids, inputs_embeds, image_features, video_features)
        return tuple((input_ids == token_id).unsqueeze(-1).to(inputs_embeds.device).expand_as(inputs_embeds)
                     for token_id in (config.image_token_id, config.video_token_id))

    return placeholder_masks


def install(model) -> list[str]:
    """Replace the syncing methods on this model instance; returns the names replaced."""
    from lora_core.training.compiled import inner_model

    inner = inner_model(model)
    replaced = []
    original = getattr(inner, "get_placeholder_mask", None)
    if original is not None and takes(original, PLACEHOLDER_PARAMETERS):
        inner.get_placeholder_mask = make_placeholder_masks(inner, original)
        replaced.append("get_placeholder_mask")
    language_model = getattr(inner, "language_model", None)
    deepstack = getattr(language_model, "_deepstack_process", None)
    if deepstack is not None and takes(deepstack, DEEPSTACK_PARAMETERS):
        language_model._deepstack_process = add_at_visual_positions
        replaced.append("_deepstack_process")
    return replaced


def image_token_mismatch(batch: dict, image_token_id: int, merge_size: int) -> str | None:
    """On the CPU: a sentence when the batch's image tokens do not match its image grids, else None."""
    grid = batch.get("image_grid_thw")
    input_ids = batch.get("input_ids")
    if grid is None or input_ids is None or input_ids.device.type != "cpu":
        return None
    expected = int(grid.prod(-1).sum()) // merge_size ** 2
    found = int((input_ids == image_token_id).sum())
    if found == expected:
        return None
    return (f"a batch holds {found} image tokens but its {len(grid)} images make {expected} image features: its "
            "samples were encoded with other image settings than the pixels were made with. Encode the data "
            "and the pixels with one ImageSettings (the run's config).")
