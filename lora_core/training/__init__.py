"""LoRA runs: config, collation, the trainer, evaluation and the run registry."""
