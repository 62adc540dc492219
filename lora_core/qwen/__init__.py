"""Qwen3-VL as a checkpoint: loading, the chat template, special tokens, geometry, the encoder and the recipes."""
