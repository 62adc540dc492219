"""gradient_checkpointing: auto. One trial step of the run's largest micro-batch without checkpointing, on the
GPU; checkpointing goes on only when that step's peak passes the memory budget (or runs out of memory)."""
from __future__ import annotations

from dataclasses import dataclass

BUDGET_SHARE = 0.9  # of the GPU's memory, when training.memory_budget_gib is empty
OPTIMIZER_MARGIN = 1.15  # the trial holds no optimizer state and no second micro-batch's pixels yet


@dataclass
class CheckpointingChoice:
    on: bool
    setting: object  # True, False or "auto"
    trial_peak_gib: float | None = None
    budget_gib: float | None = None
    reason: str = ""

    def as_status(self) -> dict:
        return {"on": self.on, "setting": self.setting, "trial_peak_gib": self.trial_peak_gib,
                "budget_gib": self.budget_gib, "reason": self.reason}


def largest_micro_batch(items, collator, batch_size: int) -> dict:
    """The micro-batch (or pack) with the most tokens that training can meet: the longest samples together."""
    longest = sorted(items, key=lambda item: -len(item.input_ids))[:batch_size]
    batch = collator(longest)
    packs = batch.get("packs")
    return max(packs, key=lambda pack: pack["input_ids"].numel()) if packs else batch


def trial_peak_gib(trainer, batch) -> float:
    """Peak GPU memory of one forward and backward of `batch` as the trainer computes it."""
    import torch

    model = trainer.model
    model.train()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    inputs = trainer._prepare_inputs(batch)
    try:
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, inputs)
        loss.backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    finally:
        model.zero_grad(set_to_none=True)
        del inputs
        torch.cuda.empty_cache()


def choose_checkpointing(config, trainer, items, collator, cuda: bool) -> CheckpointingChoice:
    setting = config.training.gradient_checkpointing
    if setting != "auto":
        return CheckpointingChoice(bool(setting), setting, reason="set in the config")
    if not cuda:
        return CheckpointingChoice(False, setting, reason="no GPU to measure on: off on a CPU")
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    budget = config.training.memory_budget_gib or round(BUDGET_SHARE * total, 1)
    batch = largest_micro_batch(items, collator, config.sft.per_device_train_batch_size)
    try:
        peak = trial_peak_gib(trainer, batch) * OPTIMIZER_MARGIN
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return CheckpointingChoice(True, setting, None, budget, "the trial step without it ran out of memory")
    on = peak > budget
    verdict = "above" if on else "within"
    return CheckpointingChoice(on, setting, round(peak, 2), budget,
                               f"a trial step of the largest micro-batch needs {peak:.1f} GiB without it, "
                               f"{verdict} the {budget:g} GiB budget")
