"""transformers.TrainingArguments for a run: the fields the run owns, the seed's keys, then the `training.sft`
pass-through keys, judged by TrainingArguments itself. A value it refuses becomes a ConfigError naming the key."""
from __future__ import annotations

import json

from lora_core.training.schema import SFT, ConfigError, RunConfig, effective_warmup, resolved_bf16, run_owned_reason

# The run's choices that a training.sft key may replace.
# No per-step host sync: the collator counts tokens (include_num_input_tokens_seen would gather them on the
# GPU), and the NaN filter would read every step's loss back.
RUN_DEFAULTS = {"logging_first_step": True, "dataloader_num_workers": 0, "disable_tqdm": True,
                "include_num_input_tokens_seen": "no", "logging_nan_inf_filter": False}
# On a GPU two workers collate (pixels are cut and copied there) while the GPU trains; they live for the run so
# their pixel caches do too.
CUDA_DEFAULTS = {"dataloader_num_workers": 2, "dataloader_persistent_workers": True}
# What TrainingArguments raises on a value it refuses.
REFUSALS = (ValueError, TypeError, KeyError, AttributeError, ImportError, NotImplementedError)
# Checked against the GPU, or switching torch's TF32 mode process-wide: the launch check leaves them to the run.
GPU_ARGUMENTS = ("tf32", "torch_compile", "torch_compile_backend", "torch_compile_mode")


def run_owned_arguments(output_dir: str, run_name: str, cuda: bool) -> dict:
    return {"output_dir": output_dir, "run_name": run_name, "use_cpu": not cuda, "label_names": ["labels"],
            "remove_unused_columns": False,  # the collator reads the items whole
            "prediction_loss_only": True}


def user_arguments(config: RunConfig, has_eval: bool, cuda: bool = False, checkpointing: bool | None = None) -> dict:
    """The config's TrainingArguments values, keyed by field, in the order a refusal is looked for."""
    from lora_core.training.schema import FIELDS, training_argument_types

    sft, known = config.sft, training_argument_types()
    values = {f.key: getattr(sft, f.key) for f in FIELDS if f.section == "training.sft" and f.key in known}
    eval_strategy = sft.eval_strategy if has_eval else "no"
    values.update(eval_strategy=eval_strategy, warmup_steps=effective_warmup(config),
                  load_best_model_at_end=sft.load_best_model_at_end and eval_strategy != "no",
                  bf16=resolved_bf16(config, cuda), fp16=sft.fp16 and not resolved_bf16(config, cuda),
                  report_to="none" if sft.report_to == ["none"] else sft.report_to,
                  **{checkpointing_field(known): bool(config.training.gradient_checkpointing is True
                                                      if checkpointing is None else checkpointing)})
    for key, value in config.passthrough.items():
        if run_owned_reason(key):
            raise ConfigError(run_owned_reason(key))
        values[key] = value
    return values


def defaults(cuda: bool) -> dict:
    return {**RUN_DEFAULTS, **(CUDA_DEFAULTS if cuda else {})}


def checkpointing_field(known_fields) -> str:
    """transformers 5.2x calls it activation_checkpointing; earlier 5.x releases (5.17 on the GPU machine)
    gradient_checkpointing."""
    return "activation_checkpointing" if "activation_checkpointing" in known_fields else "gradient_checkpointing"


def yaml_path(key: str) -> str:
    if key in ("activation_checkpointing", "gradient_checkpointing"):
        return "training.gradient_checkpointing"
    return SFT + key


def build_training_arguments(config: RunConfig, output_dir: str, run_name: str, has_eval: bool, cuda: bool,
                             checkpointing: bool | None = None):
    """`checkpointing`: the run's decision for gradient_checkpointing: auto (default: only an explicit true)."""
    from transformers import TrainingArguments

    owned = run_owned_arguments(output_dir, run_name, cuda)
    user = user_arguments(config, has_eval, cuda, checkpointing)
    try:
        return TrainingArguments(**{**defaults(cuda), **user, **owned})
    except REFUSALS as error:
        raise ConfigError(refusal({**defaults(cuda), **owned}, user, error)) from None


def refusal(base: dict, user: dict, error: Exception) -> str:
    """One sentence: the first key whose value TrainingArguments refuses (added one at a time), and why."""
    from transformers import TrainingArguments

    tried = dict(base)
    for key, value in user.items():
        tried[key] = value
        try:
            TrainingArguments(**tried)
        except REFUSALS as refused:
            return f"{yaml_path(key)} is {json.dumps(value, default=str)}, which TrainingArguments refuses: " \
                   f"{reason(refused)}"
    return f"TrainingArguments refuses this config: {reason(error)}"


def reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if text.endswith((".", "?", "!")) else text + "."


def argument_problems(config: RunConfig, cuda: bool) -> list[str]:
    """TrainingArguments' verdict before a launch, built on the CPU so the app process opens no CUDA context."""
    probe = config.copy()
    if cuda:
        for key in GPU_ARGUMENTS:
            probe.passthrough.pop(key, None)
    try:
        build_training_arguments(probe, "launch-check", "launch-check", config.data.val_fraction > 0, cuda=False)
    except ConfigError as error:
        return [str(error)]
    return []
