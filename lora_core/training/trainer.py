"""The model side of a run: the base checkpoint in the config's precision, LoRA attached, and the Trainer that
projects only trained positions onto the vocabulary (with its own learning rate for vision LoRA weights)."""
from __future__ import annotations

import os
from pathlib import Path

from lora_core.training.collate import FULL_LOGITS_ENV, trained_positions
from lora_core.training.failures import RunFailure
from lora_core.training.packing import IMAGES_KEY, SEGMENTS_KEY

# 4-bit keeps the vision tower (and its mergers) and lm_head in bf16/fp16: quantising the vision tower costs
# GUI grounding most (seed §4.3) and saves only ~0.6 GB on the 2B model.
QUANTIZATION_SKIP_MODULES = ["visual", "lm_head"]


def load_base_model(model_path: Path, config, cuda: bool):
    """The checkpoint in the precision the config asks for; 4-bit through bitsandbytes on CUDA only."""
    import torch

    from lora_core.qwen.checkpoint import load_model

    from lora_core.training.schema import resolved_bf16

    sft = config.sft
    dtype = torch.bfloat16 if resolved_bf16(config, cuda) else torch.float16 if sft.fp16 and cuda else torch.float32
    kwargs = {"dtype": dtype}
    if config.training.use_4bit:
        if not cuda:
            raise RunFailure("no CUDA", "use_4bit needs a CUDA GPU: bitsandbytes would run 4-bit layers on the CPU "
                                        "very slowly instead of failing. Set training.use_4bit to false.")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.float16,
            llm_int8_skip_modules=QUANTIZATION_SKIP_MODULES)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = load_model(model_path, **kwargs)
    for config_part in (model.config, getattr(model.config, "text_config", None)):  # the text model reads its own
        if config_part is not None:
            config_part.use_cache = False
    return model


def attach_lora(model, config, bf16: bool = False):
    """Check every target entry (an entry that matches nothing stops the run), then wrap with PEFT. PEFT keeps
    the adapter in fp32; `training.lora_dtype: bf16` casts it to bf16 when the run computes in bf16 (`bf16`)."""
    from peft import LoraConfig, get_peft_model

    from lora_core.analysis.coverage import check_entries, list_modules, peft_targets

    entries, errors = check_entries(config.lora.target_modules, list_modules(model))
    if errors:
        raise RunFailure("bad config", errors[0])
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=peft_targets(config.lora.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if bf16 and config.training.lora_dtype == "bf16":
        import torch

        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.to(torch.bfloat16)
    return model, entries


def lora_dtype_line(config, bf16: bool, model) -> str:
    """The setup line saying what the LoRA weights are kept in, and why."""
    kept = next((str(p.dtype).replace("torch.", "") for p in model.parameters() if p.requires_grad), "none")
    kept = {"float32": "fp32", "bfloat16": "bf16"}.get(kept, kept)
    if config.training.lora_dtype == "bf16" and not bf16:
        return (f"LoRA weights: {kept} (training.lora_dtype: bf16 applies to bf16 runs only, and this run computes "
                f"in fp32)")
    if kept == "bf16":
        return "LoRA weights: bf16 (training.lora_dtype: bf16; each optimizer update is rounded to bf16)"
    how = "computed in bf16 under autocast" if bf16 else "computed in fp32"
    return f"LoRA weights: {kept}, {how} (training.lora_dtype: bf16 halves their memory on a bf16 run)"


def next_token_loss(logits, labels, positions, num_items_in_batch=None):
    """Cross-entropy over trained tokens: transformers' causal-LM loss, on the kept positions only.

    The mean over this batch's trained tokens; with `num_items_in_batch` (the trained tokens of every
    micro-batch of the optimizer step, as the Trainer counts them) the sum divided by that count, as the
    model's own loss does when the Trainer passes it.
    """
    import torch.nn.functional as functional

    from lora_core.qwen.chat import IGNORE_INDEX

    if positions.numel() == 0:  # a shape, not a value: no GPU sync
        return logits.sum() * 0.0
    targets = labels[:, positions + 1]
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
    if num_items_in_batch is None:
        return functional.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX, reduction="mean")
    total = functional.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX, reduction="sum")
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def is_vision_parameter(name: str) -> bool:
    return ".visual." in name or name.startswith("visual.")


def without_counts(inputs: dict) -> dict:
    """The batch without what never reaches the model: its counts and its screenshots' names."""
    from lora_core.training.collate import BATCH_COUNTS

    return {k: v for k, v in inputs.items() if k not in BATCH_COUNTS and k != IMAGES_KEY}


def make_trainer_class():
    import contextlib

    from transformers import Trainer

    class RunTrainer(Trainer):
        """Trainer that trains packed micro-batches, normalises the loss by the trained tokens of the whole
        optimizer step (counted on the CPU by the collator), projects only trained positions onto the
        vocabulary, and may give vision LoRA weights a learning rate of their own.

        `train_collator` packs (training); `data_collator` pads (evaluation). `counter` receives each
        micro-batch's counts for progress and tokens/s."""

        vision_learning_rate: float | None = None
        train_collator = None
        counter = None
        compiled = False  # blocks under torch.compile: no Python segment lengths reach them
        eager_fallback = False  # training.compile auto: a checkpointed recompute that fails turns compiling off
        fell_back_at: int | None = None  # the step it happened at
        vision_cache = None  # vision_cache.VisionCache while the vision tower is frozen
        image_tokens = None  # (image token id, merge size): each batch's image tokens are checked on the CPU

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Qwen-VL models say they take no loss kwargs; this loss is normalised by num_items_in_batch, so
            # the Trainer must pass it and not divide by the accumulation steps as well.
            self.model_accepts_loss_kwargs = True

        def get_train_dataloader(self):
            if self.train_collator is None:
                return super().get_train_dataloader()
            padding, self.data_collator = self.data_collator, self.train_collator
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = padding

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            """The step's micro-batches and their trained tokens: Python ints from the collator, summed over
            the processes only when there are several."""
            batches = []
            for _ in range(num_batches):
                try:
                    batches.append(next(epoch_iterator))
                except StopIteration:
                    break
            if not batches or "trained_tokens" not in batches[0]:
                return batches, None
            trained = sum(batch["trained_tokens"] for batch in batches)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                import torch

                trained = self.accelerator.gather(torch.tensor(trained, device=device)).sum()
            return batches, trained

        def _prepare_input(self, data):
            """Tensors reach the GPU without the host waiting for each copy (the DataLoader pins them)."""
            import torch

            if isinstance(data, torch.Tensor) and self.args.device.type == "cuda" and not self.is_deepspeed_enabled:
                return data.to(self.args.device, non_blocking=True)
            return super()._prepare_input(data)

        @staticmethod
        def inputs_left_on_host(inputs: dict) -> tuple[str, ...]:
            """A pack with no pixels (its vision outputs cached) keeps its image grids on the host: the tower
            does not run, and the model reads them only to split the cached features (`.tolist()`, a sync for a
            GPU tensor)."""
            pixels = inputs.get("pixel_values")
            if pixels is not None and pixels.shape[0] == 0 and "image_grid_thw" in inputs:
                return ("image_grid_thw",)
            return ()

        def _prepare_inputs(self, inputs):
            left = self.inputs_left_on_host(inputs)
            if not left:
                return super()._prepare_inputs(inputs)
            prepared = super()._prepare_inputs({k: v for k, v in inputs.items() if k not in left})
            return {**prepared, **{k: inputs[k] for k in left}}

        def check_image_tokens(self, batch: dict) -> None:
            """The count check the model's forward would make on the GPU (a sync), made here on the CPU."""
            if self.image_tokens is None:
                return
            from lora_core.training.sync_free import image_token_mismatch

            problem = image_token_mismatch(batch, *self.image_tokens)
            if problem:
                raise RunFailure("bad data", problem)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.counter is not None:
                self.counter.add(inputs)
            packs = inputs.get("packs")
            if packs is None:
                self.check_image_tokens(inputs)
                return super().training_step(model, without_counts(inputs), num_items_in_batch)
            total = None
            for number, pack in enumerate(packs):
                later_packs = number < len(packs) - 1 and self.accelerator.num_processes > 1
                with self.accelerator.no_sync(model) if later_packs else contextlib.nullcontext():
                    loss = self.pack_step(model, pack, num_items_in_batch)
                total = loss if total is None else total + loss
            return total

        def pack_step(self, model, pack, num_items_in_batch):
            """One pack's forward and backward. Under `compile: auto`, a CheckpointError (the recompute ran
            another compiled graph than the forward pass) makes every block run eager from then on: the step's
            gradients so far are cleared and the pack is redone."""
            self.check_image_tokens(pack)
            if self.vision_cache is not None:
                pack = self.vision_cache.strip_pixels(pack)
            try:
                return super().training_step(model, pack, num_items_in_batch)
            except Exception as error:
                if type(error).__name__ != "CheckpointError" or not (self.compiled and self.eager_fallback):
                    raise
            import torch

            torch.compiler.set_stance("force_eager")
            self.compiled, self.fell_back_at = False, self.state.global_step + 1
            model.zero_grad(set_to_none=True)
            print(f"compile: at step {self.fell_back_at} checkpointing recomputed a compiled block with another "
                  "graph; the blocks run eager from here, and this step keeps only the gradients of its packs from "
                  "here on (training.compile: false avoids compiling at all)", flush=True)
            return super().training_step(model, pack, num_items_in_batch)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.vision_cache is not None:
                self.vision_cache.expect(inputs.get(IMAGES_KEY))
            inputs = without_counts(inputs)
            if os.environ.get(FULL_LOGITS_ENV):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            keep = inputs.get("trained_positions")
            if keep is None:
                keep = trained_positions(labels)
            left_out = ("labels", "trained_positions") + ((SEGMENTS_KEY,) if self.compiled else ())
            model_inputs = {k: v for k, v in inputs.items() if k not in left_out}
            with self.bf16_lora(model):
                # No KV cache: training never reads it, and each layer's cache entry would make compiled
                # blocks recompile once per layer.
                outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
            loss = next_token_loss(outputs.logits, labels, keep, num_items_in_batch)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes  # the count is summed over the processes
            return (loss, outputs) if return_outputs else loss

        def bf16_lora(self, model):
            """Under bf16, LoRA computes in bf16 from its fp32 weights (autocast), as the base layers do: PEFT
            would otherwise cast every activation to fp32 and back, the largest cost of a LoRA step."""
            if not self.args.bf16:
                return contextlib.nullcontext()
            import torch
            from peft.helpers import disable_input_dtype_casting

            stack = contextlib.ExitStack()
            stack.enter_context(torch.autocast(self.args.device.type, dtype=torch.bfloat16))
            stack.enter_context(disable_input_dtype_casting(model))
            return stack

        def create_optimizer(self, model=None):
            optimizer = super().create_optimizer(model)
            if self.vision_learning_rate is None or getattr(self, "_vision_group_added", False):
                return optimizer
            names = {id(p): n for n, p in (model or self.model).named_parameters()}
            for group in list(optimizer.param_groups):
                vision = [p for p in group["params"] if is_vision_parameter(names.get(id(p), ""))]
                if vision:
                    group["params"] = [p for p in group["params"] if not is_vision_parameter(names.get(id(p), ""))]
                    optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                               "params": vision, "lr": self.vision_learning_rate,
                                               "initial_lr": self.vision_learning_rate})
            optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
            self._vision_group_added = True
            return optimizer

    return RunTrainer
