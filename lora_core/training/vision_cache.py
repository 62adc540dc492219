"""training.vision_cache: while no vision weight trains, the vision tower's output for a screenshot (its merged
image embeddings and the deepstack features) is the same every epoch, so it is computed once and kept on the GPU.

Before training, `fill` runs the tower once over the run's distinct screenshots (a pre-pass, eager, up to
`max_bytes`); the packing collator is then told which screenshots are cached and makes no pixels for a pack whose
screenshots all are, so nothing is concatenated in the data-loader workers, sent between processes, pinned or
copied to the GPU for them. The collator names each pack's screenshots (`packing.IMAGES_KEY`); the trainer hands
those names to the cache before the forward pass (`expect`). When every screenshot of a pack is cached, the
tower's forward returns the stored tensors (`strip_pixels` drops pixels a pack still carries); otherwise the
tower runs on the whole pack and the new outputs are stored, up to `max_bytes`.
"""
from __future__ import annotations

from lora_core.training.compiled import vision_trains, vision_tower

DEFAULT_MAX_GIB = 2.0
BUDGET_SHARE = 0.15  # of the run's GPU memory budget, when that is more than the default
VISION_INPUT_KEYS = ("pixel_values", "cu_seqlens", "max_seqlen", "interp_indices", "interp_weights")


def cache_limit_bytes(budget_gib: float | None) -> int:
    """The cache's size limit: DEFAULT_MAX_GIB, or a share of the GPU memory budget when that is larger (the
    checkpointing trial then measures with the cache resident)."""
    return int(max(DEFAULT_MAX_GIB, BUDGET_SHARE * (budget_gib or 0)) * 2**30)


def vision_cache_wanted(setting, model) -> bool:
    """auto: on when the vision tower has nothing to train and no dropout (its output is then fixed)."""
    if not setting or setting == "false":
        return False  # true acts as auto: a trained tower's output changes every step
    visual = vision_tower(model)
    if visual is None or vision_trains(model):
        return False
    return not float(getattr(visual.config, "attention_dropout", 0.0) or 0.0) > 0


def bytes_per_visual_token(model) -> int:
    """Merged embedding plus one deepstack feature per deepstack layer, in the tower's dtype."""
    visual = vision_tower(model)
    config = visual.config
    width = getattr(config, "out_hidden_size", None) or config.hidden_size
    features = 1 + len(getattr(config, "deepstack_visual_indexes", None) or [])
    return width * features * next(visual.parameters()).element_size()


def expected_bytes(items, model, max_bytes: int) -> int:
    """What the cache will hold after one epoch of `items`: each distinct screenshot once, capped."""
    from lora_core.training.collate import PixelCache

    tokens = {}
    for item in items:
        for path, geom in zip(item.sample.images, item.geometries):
            tokens[PixelCache.key(path, geom)] = geom.visual_tokens
    return min(max_bytes, sum(tokens.values()) * bytes_per_visual_token(model))


class VisionCache:
    """Wraps the vision tower's forward on this model instance (see the module docstring)."""

    def __init__(self, model, max_bytes: int = int(DEFAULT_MAX_GIB * 2**30)):
        self.visual = vision_tower(model)
        self.tower_forward = self.visual.forward
        self.visual.forward = self.forward
        self.max_bytes, self.bytes = max_bytes, 0
        self.entries: dict = {}  # screenshot key → (embedding, [deepstack feature, ...])
        self.pending = None
        self.output_type = None  # the tower's own output class (or tuple), reused for cached outputs
        self.hits = self.misses = self.filled = 0

    def close(self) -> None:
        """The tower's own forward back, the stored outputs dropped."""
        self.visual.__dict__.pop("forward", None)
        self.entries.clear()
        self.bytes = 0

    def fill(self, model, items, pixel_cache, rope, patches_per_call: int = 16384) -> int:
        """Run the tower over the distinct screenshots of `items` (a few at a time, about `patches_per_call`
        patches) and store the outputs until the cache is full; returns the screenshots stored. The same inputs
        as a training forward: the model's own get_image_features, with the packing collator's precomputed
        attention boundaries and position-embedding interpolation."""
        import torch

        from lora_core.training.compiled import inner_model

        screenshots: dict = {}
        for item in items:
            for path, geom in zip(item.sample.images, item.geometries):
                screenshots.setdefault(pixel_cache.key(path, geom), (path, geom))
        pending = [(key, path, geom) for key, (path, geom) in screenshots.items() if key not in self.entries]
        device = next(self.visual.parameters()).device
        width = bytes_per_visual_token(model)
        before, start = len(self.entries), 0
        while start < len(pending):
            end, patches = start + 1, pending[start][2].patches
            while end < len(pending) and patches + pending[end][2].patches <= patches_per_call:
                patches += pending[end][2].patches
                end += 1
            chunk, start = pending[start:end], end
            images = tuple((key, geom.visual_tokens) for key, _, geom in chunk)
            if self.bytes + sum(tokens for _, tokens in images) * width > self.max_bytes:
                break  # full: later screenshots run the tower in training, as they would without a pre-pass
            made = [pixel_cache.pixels(path, geom) for _, path, geom in chunk]
            grids = [grid for _, grid in made]
            inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in rope.vision_inputs(grids).items()}
            pixels, grid = torch.cat([values for values, _ in made]).to(device), torch.cat(grids).to(device)
            with torch.no_grad():
                self.expect(images)
                try:
                    inner_model(model).get_image_features(pixels, grid, **inputs)
                except TypeError as error:  # a release whose get_image_features takes no precomputed inputs
                    if "unexpected keyword" not in str(error):
                        raise
                    self.expect(images)
                    inner_model(model).get_image_features(pixels, grid)
        self.misses = 0  # the pre-pass is not a training forward
        self.filled += len(self.entries) - before
        return len(self.entries) - before

    def has_all(self, images) -> bool:
        return bool(images) and all(key in self.entries for key, _ in images)

    def strip_pixels(self, pack: dict) -> dict:
        """The pack without its pixels and vision-tower inputs when the cache holds every screenshot in it."""
        from lora_core.training.packing import IMAGES_KEY

        if not self.has_all(pack.get(IMAGES_KEY)):
            return pack
        import torch

        kept = {k: v for k, v in pack.items() if k not in VISION_INPUT_KEYS}
        kept["pixel_values"] = torch.empty((0, pack["pixel_values"].shape[-1]), dtype=pack["pixel_values"].dtype)
        return kept

    def expect(self, images) -> None:
        """The screenshots (key, visual tokens) of the next vision forward, in pixel order; None: unnamed."""
        self.pending = images

    def forward(self, hidden_states, *args, **kwargs):
        images, self.pending = self.pending, None
        if images and self.has_all(images):
            self.hits += 1
            return self.assemble(images, kwargs.get("return_dict", True))
        output = self.tower_forward(hidden_states, *args, **kwargs)
        if images:
            self.misses += 1
            self.store(images, output)
        return output

    @staticmethod
    def parts(output):
        """(merged embeddings, deepstack features) from the tower's output, in either of its release's forms."""
        if hasattr(output, "pooler_output"):
            return output.pooler_output, list(output.deepstack_features or [])
        embeddings, deepstack = output[0], output[1]
        return embeddings, list(deepstack)

    def store(self, images, output) -> None:
        self.output_type = type(output)
        embeddings, deepstack = self.parts(output)
        start = 0
        for key, tokens in images:
            end = start + tokens
            size = tokens * (1 + len(deepstack)) * embeddings.element_size() * embeddings.shape[-1]
            if key not in self.entries and self.bytes + size <= self.max_bytes:
                self.entries[key] = (embeddings[start:end].detach().clone(),
                                     [feature[start:end].detach().clone() for feature in deepstack])
                self.bytes += size
            start = end

    def assemble(self, images, return_dict: bool):
        """The stored outputs of `images`, concatenated, in the form the tower returns (no pre-merge states:
        the model reads only the merged embeddings and the deepstack features)."""
        import torch

        embeddings = torch.cat([self.entries[key][0] for key, _ in images])
        layers = len(self.entries[images[0][0]][1])
        deepstack = [torch.cat([self.entries[key][1][layer] for key, _ in images]) for layer in range(layers)]
        if return_dict and self.output_type is not None and hasattr(self.output_type, "pooler_output"):
            return self.output_type(last_hidden_state=None, pooler_output=embeddings, deepstack_features=deepstack)
        return embeddings, deepstack

    def stats(self) -> dict:
        return {"screenshots": len(self.entries), "gib": round(self.bytes / 2**30, 3), "hits": self.hits,
                "misses": self.misses, "filled_before_training": self.filled}
