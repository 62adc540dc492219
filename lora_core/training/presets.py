"""The seed's presets (its §7 and §8 tables), the vision-LoRA toggle, and the side-by-side config diff."""
from __future__ import annotations

from dataclasses import dataclass

from lora_core.training.config import (
    FIELDS,
    LLM_TARGETS,
    SEED_VISION_TARGETS,
    VISION_TARGETS,
    ConfigError,
    RunConfig,
    config_from_dict,
    set_nested,
)


def with_vision_lora(config: RunConfig, enabled: bool) -> RunConfig:
    """Add (or remove) the vision-tower entries, spelled as Qwen3-VL names them."""
    config = config.copy()
    targets = config.lora.target_modules
    if isinstance(targets, str):
        raise ConfigError("target_modules is a regex; edit it directly to include or exclude the vision tower.")
    kept = [t for t in targets if t not in VISION_TARGETS and t not in SEED_VISION_TARGETS]
    config.lora.target_modules = kept + (list(VISION_TARGETS) if enabled else [])
    return config


def uses_vision_lora(config: RunConfig) -> bool:
    targets = config.lora.target_modules
    if isinstance(targets, str):
        return "visual" in targets
    return any(t in VISION_TARGETS or t.startswith("visual") or ".visual." in t for t in targets)


def diff_configs(configs: dict[str, RunConfig], only_different: bool) -> list[tuple[str, list]]:
    """(key, value per run) for every field, or only those whose values differ."""
    extras = [c.extra_settings() for c in configs.values()]
    rows = [(f.path, [c.get(f.path) for c in configs.values()]) for f in FIELDS]
    rows += [(path, [extra.get(path) for extra in extras]) for path in sorted({k for extra in extras for k in extra})]
    return [(path, values) for path, values in rows
            if not only_different or any(v != values[0] for v in values[1:])]


# ----------------------------------------------------------------- presets (the seed's tables)


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    section: str  # where in the seed the numbers come from
    values: dict
    note: str = ""

    def config(self) -> RunConfig:
        """Read as a YAML holding only these keys would be, so the other defaults follow them."""
        data: dict = {}
        for path, value in self.values.items():
            set_nested(data, path, value)
        config = config_from_dict(data).config
        config.name = self.key
        return config


PRESETS = [
    Preset("llm-only", "LLM only (seed §7.1)", "§7.1 仅微调 LLM（默认推荐）", {
        "training.lora.r": 16, "training.lora.alpha": 32, "training.lora.dropout": 0.05,
        "training.lora.target_modules": list(LLM_TARGETS),
        "training.gradient_checkpointing": True, "training.use_4bit": False,
        "training.sft.learning_rate": 2e-4, "training.sft.per_device_train_batch_size": 1,
        "training.sft.gradient_accumulation_steps": 16,
    }),
    Preset("llm-vision-4bit", "LLM + vision with 4-bit (seed §7.2)", "§7.2 同时微调视觉和 LLM", {
        "training.lora.r": 8, "training.lora.alpha": 16, "training.lora.dropout": 0.05,
        "training.lora.target_modules": LLM_TARGETS + VISION_TARGETS,
        "training.lora.vision_learning_rate": 1e-5,
        "training.gradient_checkpointing": True, "training.use_4bit": True,
        "training.sft.learning_rate": 1e-4, "training.sft.per_device_train_batch_size": 1,
        "training.sft.gradient_accumulation_steps": 32,
    }, note="The seed writes the vision entries as visual.attn.qkv, visual.attn.proj, visual.mlp.fc1 and "
            "visual.mlp.fc2, which match no module of Qwen3-VL (PEFT drops them silently). This preset uses the "
            "real names attn.qkv, attn.proj, mlp.linear_fc1, mlp.linear_fc2, and §5.3's smaller vision rate 1e-5. "
            "4-bit needs a CUDA GPU."),
    Preset("31-samples", "31 samples (seed §8.4, improved config)", "§8.4 问题3 改进后的配置 / §8.3.1", {
        "training.sft.num_train_epochs": 8, "training.sft.learning_rate": 5e-5,
        "training.sft.gradient_accumulation_steps": 8, "training.sft.warmup_steps": 10,
        "training.sft.weight_decay": 0.01,
        "training.lora.r": 8, "training.lora.alpha": 16, "training.lora.dropout": 0.1,
        "training.lora.target_modules": list(LLM_TARGETS),
    }),
    Preset("189-samples", "189 samples (seed §8.6.2)", "§8.6.2 推荐配置（189 个样本）", {
        "training.sft.max_length": 6200, "training.sft.num_train_epochs": 5,
        "training.sft.per_device_train_batch_size": 1, "training.sft.gradient_accumulation_steps": 8,
        "training.sft.learning_rate": 8e-5, "training.sft.warmup_steps": 19, "training.sft.warmup_ratio": 0.1,
        "training.sft.logging_steps": 10, "training.sft.save_steps": 50, "training.sft.save_total_limit": 3,
        "training.sft.eval_strategy": "steps", "training.sft.eval_steps": 50,
        "training.sft.load_best_model_at_end": True, "training.sft.metric_for_best_model": "eval_loss",
        "training.sft.weight_decay": 0.01, "training.sft.bf16": False,
        "training.gradient_checkpointing": True, "training.use_4bit": True, "training.max_images_per_sample": 1,
        "training.lora.r": 16, "training.lora.alpha": 32, "training.lora.dropout": 0.1,
        "training.lora.target_modules": list(LLM_TARGETS),
    }, note="The seed turns use_4bit on for a 32 GB V100 and, in §8.6.7, recommends turning it off when memory "
            "allows; 4-bit needs a CUDA GPU."),
    Preset("tiny-cpu", "tiny CPU check (embedded model, 20 steps)", "ours: a fast end-to-end run", {
        "training.sft.max_steps": 20, "training.sft.learning_rate": 5e-3, "training.sft.logging_steps": 1,
        "training.sft.eval_steps": 10, "training.sft.save_steps": 10, "training.sft.save_total_limit": 2,
        "training.sft.warmup_steps": 2, "training.gradient_checkpointing": False, "training.max_dim": 520,
        "training.lora.r": 8, "training.lora.alpha": 16, "evaluation.max_new_tokens": 48,
        "evaluation.max_samples": 4,
    }),
]
PRESETS_BY_KEY = {p.key: p for p in PRESETS}


def preset(key: str) -> Preset:
    try:
        return PRESETS_BY_KEY[key]
    except KeyError:
        raise ConfigError(f"Unknown preset {key!r}; use one of: {', '.join(PRESETS_BY_KEY)}.") from None
