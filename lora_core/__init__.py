"""The Qwen3-VL pipeline, no gradio. Layers, imports pointing down only:

- `lora_core.data`: the one sample type, dataset readers, slicing, coordinates, agent answers, images;
- `lora_core.qwen`: checkpoints and processors, the chat template, special tokens, geometry, the encoder, recipes;
- `lora_core.analysis`: resolution, masks, audit, LoRA coverage, curves (data out, never HTML);
- `lora_core.training`: run config, collation, trainer, evaluation, run registry.
"""
