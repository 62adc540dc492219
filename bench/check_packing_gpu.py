"""On a CUDA GPU: packed rows (torch's varlen flash kernel for text and vision) give each sample the loss it has
alone (sdpa, padded batch of one), in bf16 as training runs. Prints one JSON line; exit 1 when a relative
difference passes 2e-2 (bf16) or the kernel was not used.

    python bench/check_packing_gpu.py [--workspace DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the project on sys.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/check-packing"))
    args = parser.parse_args()
    import torch
    import torch.nn.functional as functional

    import lora_core.training.packing as packing
    from lora_core.qwen.chat import IGNORE_INDEX
    from lora_core.qwen.checkpoint import ensure_embedded_checkpoint, load_model
    from lora_core.training.collate import Collator, PackingCollator, PixelCache, takes_token_types
    from lora_core.training.config import RunConfig
    from lora_core.training.data import prepare_data, run_encoder

    model_path = ensure_embedded_checkpoint(args.workspace)
    config = RunConfig()
    config.data.val_fraction = 0.0
    encoder = run_encoder(config, model_path)
    items = prepare_data(config, args.workspace, None, encoder).train[:6]
    model = load_model(model_path, dtype=torch.bfloat16).cuda().eval()
    packing.use_packed_attention(model)
    used = {"varlen": 0}
    original = packing.varlen_attention

    def counted(*a, **k):
        used["varlen"] += 1
        return original(*a, **k)

    packing.varlen_attention = counted
    cache = PixelCache(encoder)
    # empty trailing slots and a run-wide length bound, as training packs them: the varlen kernel must skip them
    pack = PackingCollator(cache, packing.RopePositions(model, encoder.special.image_pad), None,
                           slots=len(items) + 3, longest=6200)(items)["packs"][0]
    padded = Collator(cache, takes_token_types(model))

    def on_gpu(batch):
        return {k: v.cuda() if hasattr(v, "cuda") else v for k, v in batch.items()}

    differences = []
    with torch.no_grad():
        inputs = {k: v for k, v in on_gpu(pack).items() if k not in ("labels", "trained_positions")}
        logits = model(**inputs).logits[0].float()
        labels = pack["labels"][0].cuda()
        start = 0
        for item in items:
            end = start + len(item.input_ids)
            mine = functional.cross_entropy(logits[start:end - 1], labels[start + 1:end], ignore_index=IGNORE_INDEX)
            batch = on_gpu(padded([item]))
            alone_logits = model(**{k: v for k, v in batch.items() if k in (
                "input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids")}).logits[0]
            alone = functional.cross_entropy(alone_logits[:-1].float(), batch["labels"][0, 1:],
                                             ignore_index=IGNORE_INDEX)
            differences.append(abs(float(mine) - float(alone)) / max(1e-6, abs(float(alone))))
            start = end
    result = {"samples": len(items), "tokens": int(pack["input_ids"].numel()), "varlen_calls": used["varlen"],
              "max_relative_loss_difference": max(differences), "torch": torch.__version__}
    print(json.dumps(result))
    return 0 if used["varlen"] and max(differences) <= 2e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
