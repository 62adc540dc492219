"""Run configs as YAML in the seed's schema: load, dump, and the checks before a launch.

Loading reads the seed's layout as written (lora_core.training.schema has the keys), hands `training.sft` keys
that name a TrainingArguments field through, reports every other key instead of ignoring it, and fills the
evaluation and saving defaults from what the user wrote so they agree with it. Dumping writes it all back.
The schema's public names (FIELDS, RunConfig, ConfigError, the target lists ...) are importable from here.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lora_core.training.schema import (  # noqa: F401  (re-exported: callers import them from here)
    effective_warmup,
    COORDINATE_SPACES,
    DEMO_SFT_KEYS,
    EVAL_STRATEGIES,
    FIELDS,
    FIELDS_BY_PATH,
    LABEL_MODES,
    LLM_ATTENTION_TARGETS,
    LLM_TARGETS,
    REPORTERS,
    SAVE_STRATEGIES,
    SCHEDULERS,
    SECTION_KEYS,
    SEED_VISION_TARGETS,
    SFT,
    VISION_TARGETS,
    ConfigError,
    Field,
    RunConfig,
    is_training_argument,
    parse_targets,
    parse_value,
    passthrough_value,
    run_owned_reason,
    training_argument_types,
)

# ----------------------------------------------------------------- YAML in


@dataclass
class LoadedConfig:
    config: RunConfig
    unknown_keys: list[str]
    notes: list[str]

    def messages(self) -> list[str]:
        return [unknown_key_message(key) for key in self.unknown_keys] + self.notes


def unknown_key_message(key: str) -> str:
    candidates = list(FIELDS_BY_PATH)
    if key.startswith("training."):  # a TrainingArguments field at the wrong level, or misspelt
        candidates += [SFT + name for name in training_argument_types() if not run_owned_reason(name)]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"Unknown key {key}: it is kept in the file but nothing reads it.{hint}"


def walk(data: dict, prefix: str, found: dict, passthrough: dict, unknown: dict) -> None:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in FIELDS_BY_PATH:
            found[path] = value
        elif path in SECTION_KEYS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a mapping of keys, got {value!r}.")
            walk(value, path, found, passthrough, unknown)
        elif prefix == "training.sft" and is_training_argument(str(key)):
            passthrough[str(key)] = value
        else:
            unknown[path] = value


def config_from_dict(data: dict | None) -> LoadedConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("A run config is a YAML mapping with a `training:` section, like the seed's §7 examples.")
    found: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    walk(data, "", found, passthrough, unknown)
    config = RunConfig()
    for path, value in found.items():
        config.set(path, parse_value(FIELDS_BY_PATH[path], value))
    config.passthrough = {key: passthrough_value(key, value) for key, value in passthrough.items()}
    config.unknown = unknown
    written = {path[len(SFT):] for path in found if path.startswith(SFT)}
    notes = follow_written_choices(config, written) + check_consistency(config)
    return LoadedConfig(config, sorted(unknown), notes)


def follow_written_choices(config: RunConfig, written: set[str]) -> list[str]:
    """Fill the unwritten evaluation and saving keys so they agree with the written ones; returns a note for
    each default that changed. Written values always stay; a contradiction between two is `launch_problems`'."""
    sft, notes = config.sft, []

    def follow(key: str, value, reason: str):
        if key not in written and getattr(sft, key) != value:
            setattr(sft, key, value)
            notes.append(f"training.sft.{key} is {json.dumps(value)} because {reason}; write it to choose otherwise.")

    if "eval_strategy" in written and sft.eval_strategy != "no":
        follow("save_strategy", sft.eval_strategy, f"eval_strategy is {sft.eval_strategy}")
    elif "save_strategy" in written and sft.save_strategy in ("steps", "epoch"):
        follow("eval_strategy", sft.save_strategy, f"save_strategy is {sft.save_strategy}")
    evaluating = sft.eval_strategy != "no"
    matching = sft.save_strategy in (sft.eval_strategy, "best")
    best = sft.load_best_model_at_end if "load_best_model_at_end" in written else evaluating and matching
    if best and sft.eval_strategy == sft.save_strategy == "steps" and sft.save_steps % sft.eval_steps:
        reason = "load_best_model_at_end needs save_steps to be a multiple of eval_steps"
        follow("save_steps", sft.eval_steps, reason)
        follow("eval_steps", sft.save_steps, reason)
    steps_fit = not (sft.eval_strategy == sft.save_strategy == "steps" and sft.save_steps % sft.eval_steps)
    follow("load_best_model_at_end", evaluating and matching and steps_fit,
           "eval_strategy is no" if not evaluating else "evaluation and saving run on different schedules")
    follow("metric_for_best_model", "eval_loss" if evaluating else None, "eval_strategy is no")
    return notes


def load_yaml_text(text: str) -> LoadedConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"The YAML does not parse{line}: {getattr(error, 'problem', None) or error}.") from None
    return config_from_dict(data)


def load_config(path) -> LoadedConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    return load_yaml_text(text)


# ----------------------------------------------------------------- YAML out


def set_nested(data: dict, path: str, value) -> None:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


# training.sft keys in the order the seed's §8.6.2 writes them; the rest follow
SFT_YAML_ORDER = ["max_length", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "learning_rate", "warmup_steps", "warmup_ratio", "logging_steps",
                  "save_strategy", "save_steps", "save_total_limit", "eval_strategy", "eval_steps",
                  "load_best_model_at_end", "metric_for_best_model", "weight_decay", "bf16", "fp16"]


def config_to_dict(config: RunConfig) -> dict:
    """The nested mapping in the seed's layout: training.lora, training.sft (pass-through keys last), the flags."""
    data: dict = {"model": config.model}
    if config.name:
        data["name"] = config.name
    data["training"] = {"lora": {}, "sft": {}}
    sft = sorted((f for f in FIELDS if f.section == "training.sft"),
                 key=lambda f: SFT_YAML_ORDER.index(f.key) if f.key in SFT_YAML_ORDER else len(SFT_YAML_ORDER))
    order = [f for f in FIELDS if f.section == "training.lora"] + sft + \
            [f for f in FIELDS if f.section == "training"] + [f for f in FIELDS if f.section in ("data", "evaluation")]
    for spec in order:
        value = config.get(spec.path)
        if isinstance(value, list):
            value = list(value)
        set_nested(data, spec.path, value)
    for path, value in config.extra_settings().items():
        set_nested(data, path, value)
    return data


class SeedStyleDumper(yaml.SafeDumper):
    """Lists indented under their key, as in the seed's examples."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def float_representer(dumper, value: float):
    if value != value or value in (float("inf"), float("-inf")) or value == int(value) and abs(value) < 1e6:
        return dumper.represent_float(value)
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 needs the dot to read it back as a number
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


SeedStyleDumper.add_representer(float, float_representer)


def dump_yaml(config: RunConfig) -> str:
    return yaml.dump(config_to_dict(config), Dumper=SeedStyleDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=120)


# ----------------------------------------------------------------- consistency


def check_consistency(config: RunConfig) -> list[str]:
    """Combinations worth a note (not errors); errors are raised by `launch_problems`."""
    sft = config.sft
    notes = []
    if sft.warmup_ratio and sft.warmup_steps:
        notes.append(f"warmup_steps ({sft.warmup_steps:g}) and warmup_ratio ({sft.warmup_ratio:g}) are both set; "
                     "warmup_steps is used (the seed lists them as alternatives).")
    if sft.bf16 is True and sft.fp16:
        notes.append("bf16 and fp16 are both true; bf16 is used.")
    if config.lora.alpha and config.lora.r and config.lora.alpha / config.lora.r not in (1, 2):
        notes.append(f"alpha/r is {config.lora.alpha / config.lora.r:g}; the seed keeps alpha = 2×r.")
    return notes


def launch_problems(config: RunConfig, cuda_available: bool, demo: bool = False) -> list[str]:
    """Reasons this config cannot run here, each a sentence; empty when it can. `demo`: the public demo's limits."""
    sft = config.sft
    problems = demo_problems(config) if demo else []
    if not config.lora.enabled:
        problems.append("training.lora.enabled is false: this tab trains LoRA adapters only; set it to true.")
    if config.training.use_4bit and not cuda_available:
        problems.append(
            "use_4bit needs a CUDA GPU. On this machine bitsandbytes would load the 4-bit layers on the CPU without "
            "complaint and train very slowly, so the run is refused: set training.use_4bit to false here, or launch "
            "on a GPU machine (seed §8.6.7).")
    if sft.fp16 and not cuda_available:
        problems.append("fp16 mixed precision needs a CUDA GPU; set training.sft.fp16 to false (or use bf16).")
    if config.training.gpus > 1 and not cuda_available and os.environ.get("LORA_ALLOW_CPU_DDP") != "1":
        # LORA_ALLOW_CPU_DDP=1 (tests only): torchrun with gloo ranks on the CPU
        problems.append(f"training.gpus is {config.training.gpus} but no CUDA GPU is visible; set it to 1.")
    if sft.load_best_model_at_end:
        if sft.eval_strategy == "no":
            problems.append("load_best_model_at_end needs evaluation: set eval_strategy to steps (or turn it off).")
        elif sft.save_strategy not in (sft.eval_strategy, "best"):
            problems.append(f"load_best_model_at_end needs save_strategy ({sft.save_strategy}) to equal eval_strategy "
                            f"({sft.eval_strategy}).")
        elif sft.eval_strategy == "steps" and sft.save_strategy == "steps" and sft.save_steps % sft.eval_steps:
            problems.append(f"load_best_model_at_end needs save_steps ({sft.save_steps}) to be a multiple of eval_steps "
                            f"({sft.eval_steps}), so every saved checkpoint has an eval_loss.")
    if sft.max_steps == 0 or (sft.max_steps < 0 and sft.num_train_epochs <= 0):
        problems.append("Nothing to train: set num_train_epochs above 0 or max_steps to a positive number.")
    for reporter in sft.report_to:
        if reporter not in ("none", "all") and not module_available(reporter):
            problems.append(f"report_to lists {reporter}, which is not installed here; remove it or "
                            f"`pip install {reporter}`. (metrics.jsonl is always written.)")
    if config.passthrough and not problems:
        from lora_core.training.arguments import argument_problems

        problems += argument_problems(config, cuda_available)
    return problems


def demo_problems(config: RunConfig) -> list[str]:
    """A sentence for each training.sft key outside DEMO_SFT_KEYS that differs from its default (bf16 false is
    auto's choice on the demo's CPU, as the seed's V100 configs write it)."""
    same_on_a_cpu = {"training.sft.bf16": (False,)}
    changed = [f.path for f in FIELDS if f.section == "training.sft" and f.key not in DEMO_SFT_KEYS
               and config.get(f.path) != f.default and config.get(f.path) not in same_on_a_cpu.get(f.path, ())]
    changed += [SFT + key for key in config.passthrough if key not in DEMO_SFT_KEYS]
    return [f"{path} cannot be changed in the public demo, which accepts only these training.sft keys: "
            f"{', '.join(DEMO_SFT_KEYS)}." for path in changed]


def module_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def targets_to_text(targets: list[str] | str) -> str:
    """The form's text for target_modules: one entry per line, or 're:' and a regex."""
    return f"re:{targets}" if isinstance(targets, str) else "\n".join(targets)


def targets_from_text(text: str) -> list[str] | str:
    text = (text or "").strip()
    if text.startswith("re:"):
        return parse_targets(text[3:], "training.lora.target_modules")
    entries = [line.split("#", 1)[0].strip().lstrip("- ").strip() for line in text.splitlines()]
    return parse_targets([e for e in entries if e], "training.lora.target_modules")
