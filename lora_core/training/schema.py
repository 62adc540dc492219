"""The run config's schema: FIELDS (one table of YAML keys: defaults, form, checks), the RunConfig it makes, the
parsing of each value, and which `training.sft` keys pass through to `transformers.TrainingArguments`.

The seed's configs (§7.1, §7.2, §8.6.2) nest `training.lora.*`, `training.sft.*` and put the memory and
data flags (`gradient_checkpointing`, `use_4bit`, `max_images_per_sample`, `max_dim`) directly under
`training`. FIELDS lists those keys plus a few of ours (`extension=True`); the section dataclasses are made
from it. Reading and writing YAML is lora_core.training.config.
"""
from __future__ import annotations

import copy
import functools
import math
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any

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
LORA_DTYPES = ("fp32", "bf16")
COORDINATE_SPACES = ("norm1000", "norm999", "abs-resized", "abs-original")
REPORTERS = ("none", "tensorboard", "trackio", "wandb", "all")

SFT = "training.sft."
# TrainingArguments fields the run sets itself, and why; every hub_* field counts as push_to_hub.
RUN_OWNED_ARGUMENTS = {
    "output_dir": "it writes into the run folder", "logging_dir": "it logs into the run folder",
    "run_name": "it is the run folder's name", "use_cpu": "it follows whether a CUDA GPU is visible",
    "label_names": "the collator fixes it", "remove_unused_columns": "the collator fixes it",
    "prediction_loss_only": "evaluation computes the loss only", "deepspeed": "the launcher decides it",
    "fsdp_config": "the launcher decides it", "resume_from_checkpoint": "each run starts fresh in its own folder",
    "push_to_hub": "a run uploads nothing"}
# TrainingArguments fields the seed's schema writes at another key.
SCHEMA_SPELLINGS = {"activation_checkpointing": "training.gradient_checkpointing",
                    "gradient_checkpointing": "training.gradient_checkpointing"}
# The training.sft keys the public demo lets a user change; every other one stays at its default there.
DEMO_SFT_KEYS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                 "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps",
                 "warmup_ratio", "weight_decay", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon",
                 "logging_steps", "eval_strategy", "eval_steps", "save_strategy", "save_steps", "save_total_limit",
                 "load_best_model_at_end", "metric_for_best_model", "seed", "label_mode", "max_length")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and what to write instead."""


@dataclass(frozen=True)
class Field:
    """One YAML key: where it lives, its default, what it holds, how the form shows it."""

    path: str
    kind: str  # bool, switch (true / false / auto), int, float, str, choice, targets, reporters
    default: Any
    group: str  # form group
    help: str = ""
    label: str = ""  # empty: the key itself
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    extension: bool = False  # not in the seed's schema; ours

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", self.key)

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def section(self) -> str:
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""


EVAL_GROUP, DATA_GROUP, MEMORY_GROUP = "evaluation and saving", "data", "memory and precision"
FIELDS: list[Field] = [
    Field("model", "str", "embedded", "model", "checkpoint folder or hub id; 'embedded' is the tiny offline Qwen3-VL",
          extension=True),
    Field("name", "str", None, "model", "shown in the run list", "run name", nullable=True, extension=True),
    # LoRA
    Field("training.lora.enabled", "bool", True, "LoRA", "this tab trains LoRA adapters only", "LoRA enabled"),
    Field("training.lora.r", "int", 16, "LoRA", "seed §8.6.3: r=8 for ~30 samples, 16 for ~200, 32–64 for 1000+",
          "r (rank)", minimum=1),
    Field("training.lora.alpha", "float", 32, "LoRA", "usually 2×r (seed §7)", minimum=0),
    Field("training.lora.dropout", "float", 0.05, "LoRA", "0.05 default, 0.1 against overfitting (§8.6.2)",
          minimum=0, maximum=0.99),
    Field("training.lora.target_modules", "targets", LLM_TARGETS, "LoRA",
          "one entry per line (PEFT: full name or dotted suffix), or one line starting with 're:' for a regex "
          "that must match the whole module name"),
    Field("training.lora.vision_learning_rate", "float", None, "LoRA",
          "its own rate for LoRA weights in the vision tower (seed §5.3 suggests ~1e-5); empty = same as LLM",
          "vision LoRA learning rate", minimum=0, nullable=True, extension=True),
    # optimisation
    Field("training.sft.learning_rate", "float", 2e-4, "optimisation", "seed §8.6.3: 5e-5 (31 samples), "
          "8e-5 (189), 1e-4–2e-4 (1000+)", minimum=0),
    Field("training.sft.num_train_epochs", "float", 3, "optimisation", minimum=0),
    Field("training.sft.max_steps", "int", -1, "optimisation", "-1: run num_train_epochs; a positive number "
          "stops after that many optimizer steps", minimum=-1),
    Field("training.sft.per_device_train_batch_size", "int", 1, "optimisation", minimum=1),
    Field("training.sft.gradient_accumulation_steps", "int", 1, "optimisation", minimum=1),
    Field("training.sft.warmup_steps", "float", 0, "optimisation",
          "steps, or a fraction of all steps when below 1 (transformers 5)", minimum=0),
    Field("training.sft.warmup_ratio", "float", None, "optimisation",
          "used only when warmup_steps is 0 (transformers 5 folded it into warmup_steps)", minimum=0, maximum=1,
          nullable=True),
    Field("training.sft.lr_scheduler_type", "choice", "linear", "optimisation", choices=SCHEDULERS),
    Field("training.sft.weight_decay", "float", 0.0, "optimisation", minimum=0),
    Field("training.sft.max_grad_norm", "float", 1.0, "optimisation", minimum=0),
    Field("training.sft.seed", "int", 42, "optimisation", minimum=0),
    # evaluation and saving
    Field("training.sft.eval_strategy", "choice", "steps", EVAL_GROUP, choices=EVAL_STRATEGIES),
    Field("training.sft.eval_steps", "int", 50, EVAL_GROUP, minimum=1),
    Field("training.sft.save_strategy", "choice", "steps", EVAL_GROUP,
          "a YAML that leaves it out follows eval_strategy", choices=SAVE_STRATEGIES),
    Field("training.sft.save_steps", "int", 50, EVAL_GROUP, minimum=1),
    Field("training.sft.save_total_limit", "int", 3, EVAL_GROUP, minimum=1, nullable=True),
    Field("training.sft.load_best_model_at_end", "bool", True, EVAL_GROUP,
          "a YAML that leaves it out: on when evaluation and saving share a schedule"),
    Field("training.sft.metric_for_best_model", "str", "eval_loss", EVAL_GROUP,
          "a YAML that leaves it out: eval_loss, or empty when eval_strategy is no", nullable=True),
    Field("training.sft.logging_steps", "int", 10, EVAL_GROUP,
          "each log reads the loss back from the GPU (a sync): every 10 steps keeps it off the hot path", minimum=1),
    Field("training.sft.per_device_eval_batch_size", "int", 8, EVAL_GROUP,
          "also the generation batch of the evaluation after training", minimum=1),
    Field("training.sft.report_to", "reporters", ["none"], EVAL_GROUP,
          "none, tensorboard, trackio, wandb (when installed); metrics.jsonl is always written", choices=REPORTERS),
    Field("evaluation.after_training", "bool", True, EVAL_GROUP, label="generate on validation after training",
          extension=True),
    Field("evaluation.max_new_tokens", "int", 160, EVAL_GROUP, label="max_new_tokens (generation)", minimum=1,
          extension=True),
    Field("evaluation.max_samples", "int", None, EVAL_GROUP, label="max validation samples to generate", minimum=1,
          nullable=True, extension=True),
    Field("evaluation.click_radius", "float", 0.05, EVAL_GROUP,
          "a click without a known target box hits when this close to the true point",
          "click radius (share of shorter side)", minimum=0, maximum=1, extension=True),
    # data
    Field("training.sft.max_length", "int", 6200, DATA_GROUP, "the seed's 6200; samples are cut here "
          "(render → truncate → label)", "max_length (tokens)", minimum=1, nullable=True),
    Field("training.max_dim", "int", 520, DATA_GROUP, "seed §4: 520 / 768 / 1024; empty = no pre-resize",
          "max_dim (pre-resize longest side)", minimum=1, nullable=True),
    Field("training.min_pixels", "int", None, DATA_GROUP, "empty = the checkpoint's processor setting", minimum=1,
          nullable=True, extension=True),
    Field("training.max_pixels", "int", None, DATA_GROUP, "empty = the checkpoint's processor setting", minimum=1,
          nullable=True, extension=True),
    Field("training.max_images_per_sample", "int", 1, DATA_GROUP, "screenshots kept per sample "
          "(the current one plus history)", minimum=1),
    Field("training.sft.label_mode", "choice", "last", DATA_GROUP, "last: only the final answer is trained (the "
          "seed's rule); all: every assistant answer", "label mode", choices=LABEL_MODES, extension=True),
    Field("data.path", "str", None, DATA_GROUP, "relative to the config's folder; empty = the demo trajectories; "
          "--data overrides it", "dataset (native JSONL)", nullable=True, extension=True),
    Field("data.val_fraction", "float", 0.2, DATA_GROUP, "split by trajectory (§8.6.4)",
          "validation share of trajectories", minimum=0, maximum=0.9, extension=True),
    Field("data.split_seed", "int", 42, DATA_GROUP, label="split seed", minimum=0, extension=True),
    Field("data.coordinate_space", "choice", "norm1000", DATA_GROUP, label="coordinate space",
          choices=COORDINATE_SPACES, extension=True),
    # memory and precision
    Field("training.gradient_checkpointing", "switch", "auto", MEMORY_GROUP,
          "recompute activations in the backward pass (TrainingArguments.activation_checkpointing); auto: on "
          "when a trial step of the largest micro-batch without it passes memory_budget_gib (GPU), off on a CPU"),
    Field("training.memory_budget_gib", "float", None, MEMORY_GROUP,
          "GPU memory gradient_checkpointing: auto may use; empty = 90 % of the GPU", "memory budget (GiB)",
          minimum=1, nullable=True, extension=True),
    Field("training.packing", "bool", True, MEMORY_GROUP,
          "lay a micro-batch's samples end to end in one row: no padding, no attention across samples",
          extension=True),
    Field("training.max_tokens_per_batch", "int", 16384, MEMORY_GROUP,
          "token budget of one packed micro-batch (up to per_device_train_batch_size samples); a longer sample "
          "trains alone; empty = no budget. On a large GPU a budget that holds all of a micro-batch's samples "
          "keeps the GPU busiest (each pack costs the host the same per-layer work; checkpointing auto makes it "
          "fit)", "max tokens per micro-batch", minimum=1, nullable=True,
          extension=True),
    Field("training.compile", "switch", "auto", MEMORY_GROUP,
          "torch.compile each decoder layer and vision block (dynamic shapes), fusing the elementwise work "
          "between GEMMs; auto: on a CUDA GPU, off on a CPU", "compile blocks", extension=True),
    Field("training.activation_memory_budget", "float", None, MEMORY_GROUP,
          "compiled blocks keep this share of their activations for the backward pass and recompute the cheapest "
          "of the rest (torch's activation_memory_budget); empty = all, or 75 % / 50 % when "
          "gradient_checkpointing auto finds the step does not fit", "compiled activation share",
          minimum=0.05, maximum=1.0, nullable=True, extension=True),
    Field("training.vision_cache", "switch", "auto", MEMORY_GROUP,
          "compute each screenshot's vision tower output (and deepstack features) once, before training, and keep "
          "it on the GPU, up to 2 GiB or 15% of the memory budget; auto: on while no vision weight trains "
          "(packing only)", "vision cache", extension=True),
    Field("training.use_4bit", "bool", False, MEMORY_GROUP, "bitsandbytes NF4; needs CUDA (§8.6.7)"),
    Field("training.sft.bf16", "switch", "auto", MEMORY_GROUP, "auto: bf16 on a GPU that has it, fp32 otherwise"),
    Field("training.sft.fp16", "bool", False, MEMORY_GROUP, "needs CUDA"),
    Field("training.lora_dtype", "choice", "fp32", MEMORY_GROUP,
          "the LoRA weights' dtype. fp32: full-precision weights and optimizer updates, computed in bf16 under a "
          "bf16 run; bf16 (bf16 runs only): half the adapter's weight, gradient and optimizer memory, each "
          "update rounded to bf16", "LoRA weights", choices=LORA_DTYPES, extension=True),
    Field("training.gpus", "int", 1, MEMORY_GROUP, "above 1 the run starts through torchrun", "GPUs", minimum=1,
          extension=True),
]
FIELDS_BY_PATH = {f.path: f for f in FIELDS}
# YAML section -> RunConfig attribute and the dataclass made from its FIELDS rows
SECTIONS = {"training.lora": "lora", "training.sft": "sft", "training": "training", "data": "data",
            "evaluation": "evaluation", "": None}
SECTION_KEYS = tuple(prefix for prefix in SECTIONS if prefix)
KIND_TYPES = {"bool": bool, "switch": bool | str, "int": int, "float": float, "str": str, "choice": str, "targets": list[str] | str,
              "reporters": list[str]}


def section_class(name: str, prefix: str):
    """A dataclass of the FIELDS rows under `prefix`, each defaulting to a fresh copy of the row's default."""
    rows = [f for f in FIELDS if f.section == prefix]
    made = make_dataclass(name, [(f.key, KIND_TYPES[f.kind] | None if f.nullable else KIND_TYPES[f.kind],
                                  field(default_factory=functools.partial(copy.deepcopy, f.default))) for f in rows])
    made.__module__ = __name__
    return made


LoraSection = section_class("LoraSection", "training.lora")
SftSection = section_class("SftSection", "training.sft")
TrainingFlags = section_class("TrainingFlags", "training")  # the seed's flags directly under `training:`
DataSection = section_class("DataSection", "data")  # data.path None trains on the demo trajectories
EvaluationSection = section_class("EvaluationSection", "evaluation")


@dataclass
class RunConfig:
    model: str = FIELDS_BY_PATH["model"].default
    name: str | None = None
    lora: LoraSection = field(default_factory=LoraSection)
    sft: SftSection = field(default_factory=SftSection)
    training: TrainingFlags = field(default_factory=TrainingFlags)
    data: DataSection = field(default_factory=DataSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    passthrough: dict[str, Any] = field(default_factory=dict)  # training.sft.<TrainingArguments field> -> value
    unknown: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, written back as found

    def get(self, path: str):
        if is_passthrough_path(path):
            return self.passthrough.get(path[len(SFT):])
        return getattr(resolve_section(self, path), path.rsplit(".", 1)[-1])

    def set(self, path: str, value) -> None:
        if is_passthrough_path(path):
            self.passthrough[path[len(SFT):]] = value
        else:
            setattr(resolve_section(self, path), path.rsplit(".", 1)[-1], value)

    def copy(self) -> "RunConfig":
        return copy.deepcopy(self)

    def extra_settings(self) -> dict[str, Any]:
        """Dotted key -> value for everything FIELDS does not list: pass-through and unknown keys."""
        return {**{SFT + key: value for key, value in self.passthrough.items()}, **self.unknown}

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


def is_passthrough_path(path: str) -> bool:
    return path.startswith(SFT) and path.count(".") == 2 and path not in FIELDS_BY_PATH


def resolve_section(config: RunConfig, path: str):
    prefix = path.rsplit(".", 1)[0] if "." in path else ""
    attribute = SECTIONS.get(prefix, "missing")
    if attribute == "missing":
        raise KeyError(path)
    return config if attribute is None else getattr(config, attribute)


# ----------------------------------------------------------------- TrainingArguments pass-through


@functools.cache
def training_argument_types() -> dict[str, Any]:
    """TrainingArguments' fields and their types; imports transformers, so only asked when a key needs it."""
    import dataclasses

    from transformers import TrainingArguments

    return {f.name: f.type for f in dataclasses.fields(TrainingArguments) if f.init}


def run_owned_reason(key: str) -> str | None:
    """Why training.sft.<key> cannot be written in the YAML (the run sets it, or the schema spells it
    elsewhere); None when it can."""
    owner = RUN_OWNED_ARGUMENTS["push_to_hub"] if key.startswith("hub_") else RUN_OWNED_ARGUMENTS.get(key)
    if owner:
        return f"{SFT}{key} is set by the run, not the YAML ({owner}); remove it."
    if key in SCHEMA_SPELLINGS:
        return f"{SFT}{key} is written {SCHEMA_SPELLINGS[key]} in this schema; set it there instead."
    return None


def is_training_argument(key: str) -> bool:
    """Whether training.sft.<key> passes through to TrainingArguments; ConfigError for a key the run sets."""
    reason = run_owned_reason(key)
    if reason:
        raise ConfigError(reason)
    return key in training_argument_types()


def passthrough_value(key: str, value):
    """The value as TrainingArguments' field type wants it: YAML's '1e-8' text becomes a number."""
    declared = training_argument_types()[key]
    kinds = set(typing.get_args(declared) or (declared,)) - {type(None)}
    if value is None or not kinds or not kinds <= {bool, int, float}:
        return value  # anything else is TrainingArguments' to judge
    if kinds == {bool}:
        return parse_bool(value, SFT + key)
    return parse_number(value, SFT + key, integer=kinds == {int})


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
    if spec.kind == "switch":
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            return parse_bool(value, spec.path)
        except ConfigError:
            raise ConfigError(f"{spec.path} must be true, false or auto, got {value!r}.") from None
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


def resolved_bf16(config: RunConfig, cuda: bool) -> bool:
    """training.sft.bf16, with auto meaning: on a CUDA GPU that computes in bf16, unless fp16 is asked for."""
    value = config.sft.bf16
    if value != "auto":
        return bool(value)
    if not cuda or config.sft.fp16:
        return False
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def effective_warmup(config: RunConfig) -> float:
    """transformers 5 has only warmup_steps (a count, or a fraction below 1)."""
    if config.sft.warmup_steps:
        return config.sft.warmup_steps
    return config.sft.warmup_ratio or 0.0
