"""training.compile: each repeated block (the LLM's decoder layers and the vision tower's blocks) compiled by
torch.compile with dynamic shapes. The elementwise work between the GEMMs (RMSNorm, rope, SiLU, LoRA dropout
and scaling, residual adds, casts) then runs fused, and the compiled backward keeps fewer activations. Shapes are
dynamic, so packs of other lengths reuse a block's graphs."""
from __future__ import annotations


def inner_model(model):
    """The Qwen-VL model inside a PEFT wrapper and the generation head (it owns language_model and visual)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "model", base)


def decoder_layers(model) -> list:
    return list(getattr(getattr(inner_model(model), "language_model", None), "layers", []) or [])


def vision_tower(model):
    return getattr(inner_model(model), "visual", None)


def vision_trains(model) -> bool:
    visual = vision_tower(model)
    return visual is not None and any(p.requires_grad for p in visual.parameters())


def repeated_blocks(model) -> list:
    """The decoder layers of the language model and the blocks of the vision tower, PEFT-wrapped or not."""
    return decoder_layers(model) + list(getattr(vision_tower(model), "blocks", []) or [])


def compile_blocks(model, backend: str = "inductor", activation_budget: float | None = None) -> int:
    """Compile every repeated block in place; returns how many. Dynamo's cache must hold an entry per block
    kind and shape class, not just the default 8, or later blocks would silently run eager. `activation_budget`:
    the share of each block's activations the compiled backward keeps (the partitioner recomputes the rest,
    cheapest first)."""
    import torch

    if activation_budget is not None:
        import torch._functorch.config as functorch_config

        functorch_config.activation_memory_budget = activation_budget

    blocks = repeated_blocks(model)
    dynamo = torch._dynamo.config
    dynamo.cache_size_limit = max(dynamo.cache_size_limit, 4 * len(blocks))
    if hasattr(dynamo, "accumulated_cache_size_limit"):
        dynamo.accumulated_cache_size_limit = max(dynamo.accumulated_cache_size_limit, 8 * len(blocks))
    for block in blocks:
        block.compile(dynamic=True, backend=backend)
    return len(blocks)


def set_activation_budget(share: float) -> None:
    """The share of each compiled block's activations its backward keeps, from the next compile on; compiled
    code is dropped so that every block compiles again under it."""
    import torch
    import torch._functorch.config as functorch_config

    functorch_config.activation_memory_budget = share
    torch._dynamo.reset()


def stop_checkpointing_frozen_blocks(model) -> None:
    """Blocks without trainable weights (the vision tower under LLM-only LoRA) keep nothing for the backward
    pass: checkpointing them saves nothing, and around compiled blocks it only adds a recompute to go wrong."""
    for block in repeated_blocks(model):
        if getattr(block, "gradient_checkpointing", False) and not any(p.requires_grad for p in block.parameters()):
            block.gradient_checkpointing = False


def at_thread_count(checkpoint_function, threads: int):
    """`checkpoint_function` whose recompute runs at `threads` torch threads, the forward pass's count.

    The recompute runs on the autograd engine's thread. A thread started after another one set torch's thread
    count (the DataLoader's pin-memory thread sets 1) takes that count, and dynamo guards on it: the compiled
    block then recompiles in the middle of the backward pass, and the new graph may save other tensors than the
    forward's did (torch.utils.checkpoint's CheckpointError)."""
    import torch

    def checkpointed(function, *args, **kwargs):
        def at_forward_thread_count(*inner_args, **inner_kwargs):
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            return function(*inner_args, **inner_kwargs)

        return checkpoint_function(at_forward_thread_count, *args, **kwargs)

    return checkpointed


def checkpoints_outside_compiled_code() -> bool:
    """Whether transformers checkpoints a layer around its compiled call (releases whose GradientCheckpointingLayer
    overrides __call__), so that the recompute enters dynamo again; later releases checkpoint inside `forward`,
    which dynamo traces into the graph."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return "__call__" in GradientCheckpointingLayer.__dict__


def keep_thread_count_in_recompute(model) -> int:
    """Checkpointed compiled blocks recompute at the forward pass's thread count (see `at_thread_count`);
    returns the blocks changed. Call once the Trainer has switched checkpointing on."""
    import torch

    if not checkpoints_outside_compiled_code():
        return 0
    threads, changed = torch.get_num_threads(), 0
    for block in repeated_blocks(model):
        function = getattr(block, "_gradient_checkpointing_func", None)
        if getattr(block, "gradient_checkpointing", False) and function is not None \
                and getattr(block, "_compiled_call_impl", None) is not None:
            block._gradient_checkpointing_func = at_thread_count(function, threads)
            changed += 1
    return changed


def compile_wanted(setting, cuda: bool) -> bool:
    """auto: on a CUDA GPU only (on the CPU compiling costs more than it saves)."""
    return cuda if setting == "auto" else bool(setting)


def compile_stats() -> dict:
    """Graphs dynamo compiled and how often it recompiled or broke a graph (read after training)."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]), "frames": int(counters["frames"]["ok"]),
            "graph_breaks": int(sum(counters["graph_break"].values()))}
