"""The training data path on the CPU: how long the trainer waits for a micro-batch when a new epoch starts
(DataLoader workers, persistent, as on a GPU run), with and without the vision cache's pre-pass.

    python bench/bench_data_path.py [--epochs 12] [--max-dim 1024]

The demo samples at max_dim 1024 (22 samples, ~750 tokens each, 12 screenshots), packed 22 per micro-batch in
packs of at most 6,144 tokens: one micro-batch per epoch, so every step of such a run starts an epoch and the
wait is not hidden behind the previous step. With the pre-pass every screenshot's tower output is cached, so the
collator makes no pixels: nothing is concatenated in the workers or sent between processes.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import machine

WORKERS = 2  # lora_core.training.arguments.CUDA_DEFAULTS


def epoch_waits(items, collator, epochs: int) -> list[float]:
    from torch.utils.data import DataLoader

    from lora_core.training.collate import ItemDataset

    loader = DataLoader(ItemDataset(items), batch_size=len(items), shuffle=True, collate_fn=collator,
                        num_workers=WORKERS, persistent_workers=True)
    waits = []
    for _ in range(epochs + 1):
        started = time.perf_counter()
        for _ in loader:
            pass
        waits.append(time.perf_counter() - started)
    return waits[1:]  # the first epoch starts the workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-dim", type=int, default=1024)
    args = parser.parse_args()

    from lora_core.qwen.checkpoint import ensure_embedded_checkpoint
    from lora_core.training.collate import PackingCollator, PixelCache
    from lora_core.training.config import RunConfig
    from lora_core.training.data import prepare_data, run_encoder
    from lora_core.training.packing import RopePositions
    from lora_core.training.trainer import load_base_model

    workspace = Path(tempfile.mkdtemp(prefix="bench-data-path-"))
    embedded = ensure_embedded_checkpoint(workspace)
    config = RunConfig()
    config.model, config.data.val_fraction = str(embedded), 0.0
    config.training.max_dim, config.sft.max_length = args.max_dim, 6200
    encoder = run_encoder(config, embedded)
    items = prepare_data(config, workspace, None, encoder).train[:22]
    model = load_base_model(embedded, config, cuda=False)
    pixel_cache = PixelCache(encoder)
    collator = PackingCollator(pixel_cache, RopePositions(model, encoder.special.image_pad), 6144,
                               slots=len(items), longest=max(len(item.input_ids) for item in items))
    collator.warm(items)
    screenshots = frozenset(pixel_cache.key(path, geom) for item in items
                            for path, geom in zip(item.sample.images, item.geometries))
    pixel_mib = sum(pack["pixel_values"].numel() * pack["pixel_values"].element_size()
                    for pack in collator(items)["packs"]) / 2**20
    print(f"machine: {machine()}")
    print(f"{len(items)} samples, {sum(len(i.input_ids) for i in items) / len(items):.0f} tokens each, "
          f"{len(screenshots)} screenshots at max_dim {args.max_dim}; {pixel_mib:.0f} MiB of pixels per micro-batch")
    print("| collator | wait for an epoch's micro-batch, median | runs (ms) |\n| --- | ---: | --- |")
    for label, cached in (("pixels made per pack", frozenset()), ("vision pre-pass: no pixels", screenshots)):
        collator.cached_images = cached
        waits = epoch_waits(items, collator, args.epochs)
        print(f"| {label} | {statistics.median(waits) * 1000:.0f} ms | "
              f"{', '.join(f'{w * 1000:.0f}' for w in waits)} |")


if __name__ == "__main__":
    main()
