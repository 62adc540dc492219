"""gradient_checkpointing: auto. One trial step of the run's largest micro-batch without checkpointing, on the
GPU. Within the memory budget it stays off. Above it, compiled blocks keep only a share of their activations (the
compiled backward recomputes the cheapest rest inside each block, no torch.utils.checkpoint): the largest share of
COMPILED_ACTIVATION_SHARES whose trial fits, shares that surely cannot fit skipped; then, if still needed, only as
many decoder layers are checkpointed as the budget needs (each one frees its share of the trial's activations),
all of them when the trial ran out of memory."""
from __future__ import annotations

import math
from dataclasses import dataclass

BUDGET_SHARE = 0.9  # of the GPU's memory, when training.memory_budget_gib is empty
OPTIMIZER_MARGIN = 1.15  # the trial holds no optimizer state and no second micro-batch's pixels yet
# The compiled backward's activation budgets tried, largest first, before any layer is checkpointed. On the H200
# (2026-12-04, long samples) keeping 75% ran 10% faster than 50% (31.1k against 28.2k tokens/s, 15.4 GiB against
# 11.1), both without checkpointing; partial checkpointing was slower than either.
COMPILED_ACTIVATION_SHARES = (0.75, 0.5)
# A compiled block under share s kept at least s × this of the eager step's activations (0.65 and 0.72 measured
# on the H200): a share whose estimate from it is over the budget is not tried (each trial is a compile).
COMPILED_KEEPS_AT_LEAST = 0.5


@dataclass
class CheckpointingChoice:
    on: bool
    setting: object  # True, False or "auto"
    trial_peak_gib: float | None = None
    budget_gib: float | None = None
    reason: str = ""
    layers: int | None = None  # decoder layers checkpointed (the first ones); None: every layer when on
    activation_budget: float | None = None  # set for compiled blocks by auto (see COMPILED_ACTIVATION_SHARES)

    def as_status(self) -> dict:
        return {"on": self.on, "setting": self.setting, "trial_peak_gib": self.trial_peak_gib,
                "budget_gib": self.budget_gib, "reason": self.reason, "layers": self.layers,
                "activation_budget": self.activation_budget}


def layers_to_checkpoint(peak_gib: float, resting_gib: float, budget_gib: float, layers: int,
                         margin: float = OPTIMIZER_MARGIN) -> int:
    """Decoder layers to checkpoint so that (resting + the activations left) × margin fits the budget, each
    checkpointed layer freeing 1/layers of the trial's activations (peak − resting), and one more for safety.
    Counting every activation as a layer's (logits, embeddings) errs on the side of checkpointing more."""
    activations = peak_gib - resting_gib
    if peak_gib * margin <= budget_gib or activations <= 0:
        return 0
    share = 1 - (budget_gib / margin - resting_gib) / activations
    return min(layers, max(0, math.ceil(share * layers) + 1))


def apply_checkpointed_layers(model, layers: int | None) -> None:
    """After the Trainer has switched checkpointing on everywhere: off again past the first `layers` decoder
    layers."""
    from lora_core.training.compiled import decoder_layers

    if layers is None:
        return
    for layer in decoder_layers(model)[layers:]:
        if hasattr(layer, "gradient_checkpointing"):
            layer.gradient_checkpointing = False


def largest_micro_batch(items, collator, batch_size: int) -> dict:
    """The micro-batch (or pack) with the most tokens that training can meet: the longest samples together."""
    longest = sorted(items, key=lambda item: -len(item.input_ids))[:batch_size]
    batch = collator(longest)
    packs = batch.get("packs")
    return max(packs, key=lambda pack: pack["input_ids"].numel()) if packs else batch


def trial_peak_gib(trainer, batch) -> tuple[float, float]:
    """(peak, resting) GPU memory of one forward and backward of `batch` as the trainer computes it; resting is
    what was allocated before it (the weights)."""
    import torch

    model = trainer.model
    model.train()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    resting = torch.cuda.memory_allocated() / 2**30
    inputs = trainer._prepare_inputs(batch)
    try:
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, inputs)
        loss.backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30, resting
    finally:
        model.zero_grad(set_to_none=True)
        del inputs
        torch.cuda.empty_cache()


def memory_budget_gib(config) -> float:
    """training.memory_budget_gib, or BUDGET_SHARE of the first GPU's memory."""
    if config.training.memory_budget_gib:
        return config.training.memory_budget_gib
    import torch

    return round(BUDGET_SHARE * torch.cuda.get_device_properties(0).total_memory / 2**30, 1)


def shares_to_try(peak: float | None, resting: float | None, budget_gib: float, reserved_gib: float) -> list[float]:
    """COMPILED_ACTIVATION_SHARES worth a trial, largest first; after an eager trial that ran out of memory only the
    smallest (nothing is known to estimate from)."""
    if peak is None:
        return [min(COMPILED_ACTIVATION_SHARES)]
    activations = max(peak - resting, 0.0)
    hopeful = [share for share in COMPILED_ACTIVATION_SHARES
               if (resting + COMPILED_KEEPS_AT_LEAST * share * activations) * OPTIMIZER_MARGIN + reserved_gib
               <= budget_gib]
    return hopeful or [min(COMPILED_ACTIVATION_SHARES)]


def choose_checkpointing(config, trainer, items, collator, cuda: bool, reserved_gib: float = 0.0,
                         partial: bool = True, compiled: bool = False, measure=None,
                         keep_activations=None) -> CheckpointingChoice:
    """`reserved_gib`: memory the run will hold beside the step (the vision cache); `partial`: some decoder
    layers may stay uncheckpointed (only when the trial's activations are the decoder's, the vision tower
    frozen); `compiled`: the blocks are compiled, so with no training.activation_memory_budget set the compiled
    backward may keep a share of COMPILED_ACTIVATION_SHARES first. `measure` (the trial: (peak, resting) GiB) and
    `keep_activations` (sets the compiled share and recompiles) are the GPU's own unless given.

    Where a share may follow, the first trial runs the blocks eager: compiled blocks keep no more than eager
    ones, so an eager step that fits decides without compiling, and one that does not fit costs no compile that
    a share would throw away."""
    setting = config.training.gradient_checkpointing
    if setting != "auto":
        return CheckpointingChoice(bool(setting), setting, reason="set in the config")
    if not cuda:
        return CheckpointingChoice(False, setting, reason="no GPU to measure on: off on a CPU")
    import torch

    from lora_core.training.compiled import decoder_layers, set_activation_budget

    budget = memory_budget_gib(config)
    if measure is None:
        batch = largest_micro_batch(items, collator, config.sft.per_device_train_batch_size)

        def measure(eager: bool = False):
            if not eager:
                return trial_peak_gib(trainer, batch)
            with torch.compiler.set_stance("force_eager"):
                return trial_peak_gib(trainer, batch)
    keep_activations = keep_activations or set_activation_budget
    share_first = compiled and config.training.activation_memory_budget is None
    trial = "an eager trial step" if share_first else "a trial step"
    share, told = None, ""
    try:
        peak, resting = measure(eager=share_first)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        if not share_first:
            return CheckpointingChoice(True, setting, None, budget, "the trial step without it ran out of memory")
        peak = resting = None
        told = f"{trial} of the largest micro-batch without it ran out of memory"
    if peak is not None:
        needed = peak * OPTIMIZER_MARGIN + reserved_gib
        told = (f"{trial} of the largest micro-batch needs {needed:.1f} GiB without it"
                + (f" (vision cache {reserved_gib:.1f} GiB included)" if reserved_gib else ""))
        if needed <= budget:
            return CheckpointingChoice(False, setting, round(needed, 2), budget,
                                       f"{told}, within the {budget:g} GiB budget")
    if share_first:
        measured = None
        for share in shares_to_try(peak, resting, budget, reserved_gib):
            keep_activations(share)
            try:
                peak, resting = measure()
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                told += f"; with the compiled blocks keeping {share:.0%} of their activations it still did"
                continue
            measured = share
            needed = peak * OPTIMIZER_MARGIN + reserved_gib
            told += (f"; with the compiled blocks keeping {share:.0%} of their activations (the rest recomputed "
                     f"inside each block), {needed:.1f} GiB")
            if needed <= budget:
                return CheckpointingChoice(False, setting, round(needed, 2), budget,
                                           f"{told}, within the {budget:g} GiB budget", activation_budget=share)
        if measured is None:
            return CheckpointingChoice(True, setting, None, budget, f"{told}: every layer", activation_budget=share)
        if measured != share:  # the last share ran out of memory: checkpoint under the one that was measured
            keep_activations(measured)
            share = measured
    layers = len(decoder_layers(trainer.model))
    count = layers_to_checkpoint(peak, resting, budget - reserved_gib, layers) if partial and layers else layers
    if count >= layers:
        return CheckpointingChoice(True, setting, round(needed, 2), budget,
                                   f"{told}, above the {budget:g} GiB budget: every layer", activation_budget=share)
    return CheckpointingChoice(True, setting, round(needed, 2), budget,
                               f"{told}, above the {budget:g} GiB budget: the first {count} of {layers} decoder "
                               "layers, enough to fit", layers=count, activation_budget=share)
