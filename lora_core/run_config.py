"""RunConfig: one LoRA run's settings, read and written as YAML in the seed's schema.

The seed's configs (§7.1, §7.2, §8.6.2) nest `training.lora.*`, `training.sft.*` and put the memory and
data flags (`gradient_checkpointing`, `use_4bit`, `max_images_per_sample`, `max_dim`) directly under
`training`. This module reads that schema as written, adds a few keys of its own (listed in FIELDS with
`extension=True`), reports every key it does not know instead of ignoring it, and writes it back.
"""
from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

LLM_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LLM_ATTENTION_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
# The seed's vision entries (§5.2, §7.2): in Qwen3-VL none of them matches a module.
SEED_VISION_TARGETS = ["visual.attn.qkv", "visual.attn.proj", "visual.mlp.fc1", "visual.mlp.fc2"]
# What the seed meant, spelled as Qwen3-VL names its vision blocks (model.visual.blocks.N.attn.qkv ...).
VISION_TARGETS = ["attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"]

LABEL_MODES = ("last", "all")
EVAL_STRATEGIES = ("no", "steps", "epoch")
SAVE_STRATEGIES = ("no", "steps", "epoch", "best")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
COORDINATE_SPACES = ("norm1000", "norm999", "abs-resized", "abs-original")
REPORTERS = ("none", "tensorboard", "trackio", "wandb", "all")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and what to write instead."""


@dataclass
class LoraSection:
    enabled: bool = True
    r: int = 16
    alpha: float = 32
    dropout: float = 0.05
    target_modules: list[str] | str = field(default_factory=lambda: list(LLM_TARGETS))
    vision_learning_rate: float | None = None  # extension: its own rate for LoRA weights in the vision tower


@dataclass
class SftSection:
    max_length: int | None = 6200
    num_train_epochs: float = 3
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    per_device_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    warmup_steps: float = 0
    warmup_ratio: float | None = None
    lr_scheduler_type: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 1
    eval_strategy: str = "steps"
    eval_steps: int = 50
    save_strategy: str = "steps"
    save_steps: int = 50
    save_total_limit: int | None = 3
    load_best_model_at_end: bool = True
    metric_for_best_model: str = "eval_loss"
    bf16: bool = False
    fp16: bool = False
    seed: int = 42
    label_mode: str = "last"
    report_to: list[str] = field(default_factory=lambda: ["none"])


@dataclass
class TrainingFlags:
    """The seed's flags directly under `training:`."""

    gradient_checkpointing: bool = True
    use_4bit: bool = False
    max_images_per_sample: int = 1
    max_dim: int | None = 520
    min_pixels: int | None = None  # None: the checkpoint's own processor setting
    max_pixels: int | None = None
    gpus: int = 1


@dataclass
class DataSection:
    path: str | None = None  # native sample JSONL; None trains on the demo trajectories
    val_fraction: float = 0.2
    split_seed: int = 42
    coordinate_space: str = "norm1000"


@dataclass
class EvaluationSection:
    after_training: bool = True
    max_new_tokens: int = 160
    max_samples: int | None = None
    click_radius: float = 0.05  # hit when within this share of the screenshot's shorter side (no target box)


@dataclass
class RunConfig:
    model: str = "embedded"
    name: str | None = None
    lora: LoraSection = field(default_factory=LoraSection)
    sft: SftSection = field(default_factory=SftSection)
    training: TrainingFlags = field(default_factory=TrainingFlags)
    data: DataSection = field(default_factory=DataSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    unknown: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, written back as found

    def get(self, path: str):
        return getattr(resolve_section(self, path), path.rsplit(".", 1)[-1])

    def set(self, path: str, value) -> None:
        setattr(resolve_section(self, path), path.rsplit(".", 1)[-1], value)

    def copy(self) -> "RunConfig":
        return copy.deepcopy(self)

    @property
    def effective_batch(self) -> int:
        return self.sft.per_device_train_batch_size * self.sft.gradient_accumulation_steps * max(1, self.training.gpus)

    def image_settings(self, model_settings):
        """The checkpoint's ImageSettings with this run's max_dim and pixel budget."""
        changes = {"max_dim": self.training.max_dim}
        if self.training.min_pixels:
            changes["min_pixels"] = self.training.min_pixels
        if self.training.max_pixels:
            changes["max_pixels"] = self.training.max_pixels
        return model_settings.with_(**changes)


SECTIONS = {"training.lora": "lora", "training.sft": "sft", "training": "training", "data": "data",
            "evaluation": "evaluation", "": None}


def resolve_section(config: RunConfig, path: str):
    prefix = path.rsplit(".", 1)[0] if "." in path else ""
    attribute = SECTIONS.get(prefix, "missing")
    if attribute == "missing":
        raise KeyError(path)
    return config if attribute is None else getattr(config, attribute)


@dataclass(frozen=True)
class Field:
    """One YAML key: where it lives, what it holds, how the form shows it."""

    path: str
    kind: str  # bool, int, float, str, choice, targets, reporters
    label: str
    group: str  # form group
    help: str = ""
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    extension: bool = False  # not in the seed's schema; ours


FIELDS: list[Field] = [
    Field("model", "str", "model", "model", "checkpoint folder or hub id; 'embedded' is the tiny offline Qwen3-VL",
          extension=True),
    Field("name", "str", "run name", "model", "shown in the run list", nullable=True, extension=True),
    # LoRA
    Field("training.lora.enabled", "bool", "LoRA enabled", "LoRA", "this tab trains LoRA adapters only"),
    Field("training.lora.r", "int", "r (rank)", "LoRA", "seed §8.6.3: r=8 for ~30 samples, 16 for ~200, 32–64 for 1000+",
          minimum=1),
    Field("training.lora.alpha", "float", "alpha", "LoRA", "usually 2×r (seed §7)", minimum=0),
    Field("training.lora.dropout", "float", "dropout", "LoRA", "0.05 default, 0.1 against overfitting (§8.6.2)",
          minimum=0, maximum=0.99),
    Field("training.lora.target_modules", "targets", "target_modules", "LoRA",
          "one entry per line (PEFT: full name or dotted suffix), or one line starting with 're:' for a regex "
          "that must match the whole module name"),
    Field("training.lora.vision_learning_rate", "float", "vision LoRA learning rate", "LoRA",
          "its own rate for LoRA weights in the vision tower (seed §5.3 suggests ~1e-5); empty = same as LLM",
          minimum=0, nullable=True, extension=True),
    # optimisation
    Field("training.sft.learning_rate", "float", "learning_rate", "optimisation", "seed §8.6.3: 5e-5 (31 samples), "
          "8e-5 (189), 1e-4–2e-4 (1000+)", minimum=0),
    Field("training.sft.num_train_epochs", "float", "num_train_epochs", "optimisation", minimum=0),
    Field("training.sft.max_steps", "int", "max_steps", "optimisation", "-1: run num_train_epochs; a positive number "
          "stops after that many optimizer steps", minimum=-1),
    Field("training.sft.per_device_train_batch_size", "int", "per_device_train_batch_size", "optimisation", minimum=1),
    Field("training.sft.gradient_accumulation_steps", "int", "gradient_accumulation_steps", "optimisation", minimum=1),
    Field("training.sft.warmup_steps", "float", "warmup_steps", "optimisation",
          "steps, or a fraction of all steps when below 1 (transformers 5)", minimum=0),
    Field("training.sft.warmup_ratio", "float", "warmup_ratio", "optimisation",
          "used only when warmup_steps is 0 (transformers 5 folded it into warmup_steps)", minimum=0, maximum=1,
          nullable=True),
    Field("training.sft.lr_scheduler_type", "choice", "lr_scheduler_type", "optimisation", choices=SCHEDULERS),
    Field("training.sft.weight_decay", "float", "weight_decay", "optimisation", minimum=0),
    Field("training.sft.max_grad_norm", "float", "max_grad_norm", "optimisation", minimum=0),
    Field("training.sft.seed", "int", "seed", "optimisation", minimum=0),
    # evaluation and saving
    Field("training.sft.eval_strategy", "choice", "eval_strategy", "evaluation and saving", choices=EVAL_STRATEGIES),
    Field("training.sft.eval_steps", "int", "eval_steps", "evaluation and saving", minimum=1),
    Field("training.sft.save_strategy", "choice", "save_strategy", "evaluation and saving", choices=SAVE_STRATEGIES),
    Field("training.sft.save_steps", "int", "save_steps", "evaluation and saving", minimum=1),
    Field("training.sft.save_total_limit", "int", "save_total_limit", "evaluation and saving", minimum=1, nullable=True),
    Field("training.sft.load_best_model_at_end", "bool", "load_best_model_at_end", "evaluation and saving"),
    Field("training.sft.metric_for_best_model", "str", "metric_for_best_model", "evaluation and saving"),
    Field("training.sft.logging_steps", "int", "logging_steps", "evaluation and saving", minimum=1),
    Field("training.sft.per_device_eval_batch_size", "int", "per_device_eval_batch_size", "evaluation and saving",
          minimum=1),
    Field("training.sft.report_to", "reporters", "report_to", "evaluation and saving",
          "none, tensorboard, trackio, wandb (when installed); metrics.jsonl is always written", choices=REPORTERS),
    Field("evaluation.after_training", "bool", "generate on validation after training", "evaluation and saving",
          extension=True),
    Field("evaluation.max_new_tokens", "int", "max_new_tokens (generation)", "evaluation and saving", minimum=1,
          extension=True),
    Field("evaluation.max_samples", "int", "max validation samples to generate", "evaluation and saving", minimum=1,
          nullable=True, extension=True),
    Field("evaluation.click_radius", "float", "click radius (share of shorter side)", "evaluation and saving",
          "a click without a known target box hits when this close to the true point", minimum=0, maximum=1,
          extension=True),
    # data
    Field("training.sft.max_length", "int", "max_length (tokens)", "data", "the seed's 6200; samples are cut here "
          "(render → truncate → label)", minimum=1, nullable=True),
    Field("training.max_dim", "int", "max_dim (pre-resize longest side)", "data", "seed §4: 520 / 768 / 1024; "
          "empty = no pre-resize", minimum=1, nullable=True),
    Field("training.min_pixels", "int", "min_pixels", "data", "empty = the checkpoint's processor setting", minimum=1,
          nullable=True, extension=True),
    Field("training.max_pixels", "int", "max_pixels", "data", "empty = the checkpoint's processor setting", minimum=1,
          nullable=True, extension=True),
    Field("training.max_images_per_sample", "int", "max_images_per_sample", "data", "screenshots kept per sample "
          "(the current one plus history)", minimum=1),
    Field("training.sft.label_mode", "choice", "label mode", "data", "last: only the final answer is trained (the "
          "seed's rule); all: every assistant answer", choices=LABEL_MODES, extension=True),
    Field("data.path", "str", "dataset (native JSONL)", "data", "relative to the config's folder; empty = the demo "
          "trajectories; --data overrides it", nullable=True, extension=True),
    Field("data.val_fraction", "float", "validation share of trajectories", "data", "split by trajectory (§8.6.4)",
          minimum=0, maximum=0.9, extension=True),
    Field("data.split_seed", "int", "split seed", "data", minimum=0, extension=True),
    Field("data.coordinate_space", "choice", "coordinate space", "data", choices=COORDINATE_SPACES, extension=True),
    # memory and precision
    Field("training.gradient_checkpointing", "bool", "gradient_checkpointing", "memory and precision",
          "recompute activations in the backward pass (TrainingArguments.activation_checkpointing)"),
    Field("training.use_4bit", "bool", "use_4bit", "memory and precision", "bitsandbytes NF4; needs CUDA (§8.6.7)"),
    Field("training.sft.bf16", "bool", "bf16", "memory and precision"),
    Field("training.sft.fp16", "bool", "fp16", "memory and precision", "needs CUDA"),
    Field("training.gpus", "int", "GPUs", "memory and precision", "above 1 the run starts through torchrun",
          minimum=1, extension=True),
]
FIELDS_BY_PATH = {f.path: f for f in FIELDS}
SECTION_KEYS = ("training", "training.lora", "training.sft", "data", "evaluation")


# ----------------------------------------------------------------- value parsing


def parse_number(text, path: str, integer: bool):
    """A number from YAML; strings like '5e-5' (which YAML 1.1 reads as text) are accepted as numbers."""
    if isinstance(text, bool):
        raise ConfigError(f"{path} must be a number, not {text!r}.")
    if isinstance(text, str):
        try:
            text = float(text.strip())
        except ValueError:
            raise ConfigError(f"{path} must be a number, got {text!r}.") from None
    if not isinstance(text, (int, float)) or math.isnan(text) or math.isinf(text):
        raise ConfigError(f"{path} must be a number, got {text!r}.")
    if integer:
        if float(text) != int(text):
            raise ConfigError(f"{path} must be a whole number, got {text!r}.")
        return int(text)
    return text if isinstance(text, int) else float(text)  # alpha: 16 stays 16


def parse_bool(value, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{path} must be true or false, got {value!r}.")


def parse_targets(value, path: str) -> list[str] | str:
    """A list of module-name entries, or one regex string (PEFT's two forms)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ConfigError(f"{path} is empty; list module names such as q_proj, or give a regex.")
        return text
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path} must be a non-empty list of module names, or a regex string.")
    entries = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{path} holds {item!r}; every entry must be a module name such as q_proj.")
        entries.append(item.strip())
    return entries


def parse_reporters(value, path: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{path} must be a name or a list of names ({', '.join(REPORTERS)}).")
    items = [i.strip() for i in items if i.strip()] or ["none"]
    unknown = [i for i in items if i not in REPORTERS]
    if unknown:
        raise ConfigError(f"{path}: unknown reporter {unknown[0]!r}; use {', '.join(REPORTERS)}.")
    return items


def parse_value(spec: Field, value):
    if value is None or (isinstance(value, str) and not value.strip() and spec.kind not in ("targets",)):
        if spec.nullable:
            return None
        raise ConfigError(f"{spec.path} needs a value.")
    if spec.kind == "bool":
        return parse_bool(value, spec.path)
    if spec.kind in ("int", "float"):
        number = parse_number(value, spec.path, spec.kind == "int")
        if spec.minimum is not None and number < spec.minimum:
            raise ConfigError(f"{spec.path} must be at least {spec.minimum:g}, got {number:g}.")
        if spec.maximum is not None and number > spec.maximum:
            raise ConfigError(f"{spec.path} must be at most {spec.maximum:g}, got {number:g}.")
        return number
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ConfigError(f"{spec.path} is {value!r}; use one of: {', '.join(spec.choices)}.")
        return value
    if spec.kind == "targets":
        return parse_targets(value, spec.path)
    if spec.kind == "reporters":
        return parse_reporters(value, spec.path)
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{spec.path} must be text, got {value!r}.")
    return str(value)


# ----------------------------------------------------------------- YAML in and out


@dataclass
class LoadedConfig:
    config: RunConfig
    unknown_keys: list[str]
    notes: list[str]

    def messages(self) -> list[str]:
        return [unknown_key_message(key) for key in self.unknown_keys] + self.notes


def unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, list(FIELDS_BY_PATH), n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"Unknown key {key}: it is kept in the file but nothing reads it.{hint}"


def walk(data: dict, prefix: str, found: dict, unknown: dict) -> None:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in FIELDS_BY_PATH:
            found[path] = value
        elif path in SECTION_KEYS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a mapping of keys, got {value!r}.")
            walk(value, path, found, unknown)
        else:
            unknown[path] = value


def config_from_dict(data: dict | None) -> LoadedConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("A run config is a YAML mapping with a `training:` section, like the seed's §7 examples.")
    found: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    walk(data, "", found, unknown)
    config = RunConfig()
    for path, value in found.items():
        config.set(path, parse_value(FIELDS_BY_PATH[path], value))
    config.unknown = unknown
    notes = check_consistency(config, explicit=set(found))
    return LoadedConfig(config, sorted(unknown), notes)


def load_yaml_text(text: str) -> LoadedConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"The YAML does not parse{line}: {getattr(error, 'problem', None) or error}.") from None
    return config_from_dict(data)


def load_config(path) -> LoadedConfig:
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    return load_yaml_text(text)


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
    """The nested mapping in the seed's layout: training.lora, training.sft, then the flags."""
    data: dict = {"model": config.model}
    if config.name:
        data["name"] = config.name
    data["training"] = {"lora": {}, "sft": {}}
    sft = sorted((f for f in FIELDS if f.path.startswith("training.sft.")),
                 key=lambda f: SFT_YAML_ORDER.index(f.path.split(".")[-1]) if f.path.split(".")[-1] in SFT_YAML_ORDER
                 else len(SFT_YAML_ORDER))
    order = [f for f in FIELDS if f.path.startswith("training.lora.")] + sft + \
            [f for f in FIELDS if f.path.count(".") == 1 and f.path.startswith("training.")] + \
            [f for f in FIELDS if f.path.startswith(("data.", "evaluation."))]
    for spec in order:
        value = config.get(spec.path)
        if isinstance(value, list):
            value = list(value)
        set_nested(data, spec.path, value)
    for path, value in config.unknown.items():
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


def check_consistency(config: RunConfig, explicit: set[str] | None = None) -> list[str]:
    """Combinations worth a note (not errors); errors are raised by `launch_problems`."""
    explicit = explicit or set()
    sft = config.sft
    notes = []
    if sft.warmup_ratio and sft.warmup_steps:
        notes.append(f"warmup_steps ({sft.warmup_steps:g}) and warmup_ratio ({sft.warmup_ratio:g}) are both set; "
                     "warmup_steps is used (the seed lists them as alternatives).")
    if sft.bf16 and sft.fp16:
        notes.append("bf16 and fp16 are both true; bf16 is used.")
    if config.lora.alpha and config.lora.r and config.lora.alpha / config.lora.r not in (1, 2):
        notes.append(f"alpha/r is {config.lora.alpha / config.lora.r:g}; the seed keeps alpha = 2×r.")
    return notes


def effective_warmup(config: RunConfig) -> float:
    """transformers 5 has only warmup_steps (a count, or a fraction below 1)."""
    if config.sft.warmup_steps:
        return config.sft.warmup_steps
    return config.sft.warmup_ratio or 0.0


def launch_problems(config: RunConfig, cuda_available: bool) -> list[str]:
    """Reasons this config cannot run here, each a sentence; empty when it can."""
    sft = config.sft
    problems = []
    if not config.lora.enabled:
        problems.append("training.lora.enabled is false: this tab trains LoRA adapters only; set it to true.")
    if config.training.use_4bit and not cuda_available:
        problems.append(
            "use_4bit needs a CUDA GPU. On this machine bitsandbytes would load the 4-bit layers on the CPU without "
            "complaint and train very slowly, so the run is refused: set training.use_4bit to false here, or launch "
            "on a GPU machine (seed §8.6.7).")
    if sft.fp16 and not cuda_available:
        problems.append("fp16 mixed precision needs a CUDA GPU; set training.sft.fp16 to false (or use bf16).")
    if config.training.gpus > 1 and not cuda_available:
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
    return problems


def module_available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


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
    rows = []
    paths = [f.path for f in FIELDS] + sorted({k for c in configs.values() for k in c.unknown})
    for path in paths:
        values = [c.unknown.get(path) if path not in FIELDS_BY_PATH else c.get(path) for c in configs.values()]
        if only_different and all(v == values[0] for v in values[1:]):
            continue
        rows.append((path, values))
    return rows


# ----------------------------------------------------------------- presets (the seed's tables)


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    section: str  # where in the seed the numbers come from
    values: dict
    note: str = ""

    def config(self) -> RunConfig:
        config = RunConfig()
        for path, value in self.values.items():
            config.set(path, parse_value(FIELDS_BY_PATH[path], value))
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


def dataclass_paths() -> set[str]:
    """Every settable path of RunConfig (for checking FIELDS covers them)."""
    paths = {"model", "name"}
    for prefix, attribute in SECTIONS.items():
        if attribute:
            paths |= {f"{prefix}.{f.name}" for f in fields(getattr(RunConfig(), attribute))}
    return paths


def targets_to_text(targets: list[str] | str) -> str:
    """The form's text for target_modules: one entry per line, or 're:' and a regex."""
    return f"re:{targets}" if isinstance(targets, str) else "\n".join(targets)


def targets_from_text(text: str) -> list[str] | str:
    text = (text or "").strip()
    if text.startswith("re:"):
        return parse_targets(text[3:], "training.lora.target_modules")
    entries = [line.split("#", 1)[0].strip().lstrip("- ").strip() for line in text.splitlines()]
    return parse_targets([e for e in entries if e], "training.lora.target_modules")
