"""One LoRA run: `python -m lora_core.train --config runs/<id>/config.yaml [--data DATASET.jsonl]`.

Everything is written into the folder that holds the config (DESIGN.md, the run folder):
status.json, metrics.jsonl, train.log, checkpoint-N/, adapter/ (PEFT's format), predictions.jsonl, eval.json.

The path from a sample to a batch is the app's one path: the run's encoder (`lora_core.qwen.encoder`) gives
input_ids, labels, geometry and pixels (render → truncate → label); the image processor's grid must equal that
geometry, so the number of image pads and of visual features always agree.
SIGTERM (or a STOP file in the run folder) stops at the next step and saves a checkpoint first; with several
ranks rank 0 decides and tells the others every few steps (callbacks.StopSync). A SIGTERM after the launcher
wrote a KILL file ends the process at once (the Kill button).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

from lora_core.training.failures import RunFailure
from lora_core.training.run_folder import RunFolder, default_workspace

STOP_REQUESTED = threading.Event()
LOG_ATTACHED_ENV = "LORA_RUN_LOG_ATTACHED"  # set by the launcher when stdout/stderr already go to train.log
LAUNCHED_ENV = "LORA_RUN_LAUNCHED"  # set by the launcher, which records the run's pid (its process group) itself
RUN_FOLDER: RunFolder | None = None  # for the SIGTERM handler


def training_arguments(config, folder: RunFolder, has_eval: bool, cuda: bool, checkpointing: bool | None = None):
    """The run's TrainingArguments; a training.sft value TrainingArguments refuses raises ConfigError naming it."""
    from lora_core.training.arguments import build_training_arguments

    return build_training_arguments(config, str(folder.path), folder.path.name, has_eval, cuda, checkpointing)


# ----------------------------------------------------------------- the run


class Tee:
    """Write to the terminal and to train.log (when run by hand; the launcher redirects instead)."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self.stream.fileno()


def classify_exception(error: BaseException) -> tuple[str, str]:
    """(reason, message) for an exception that ended a run."""
    from lora_core.data.images import ImageInputError
    from lora_core.training.config import ConfigError
    from lora_core.data.samples import SampleFormatError

    text = str(error)
    if isinstance(error, RunFailure):
        return error.reason, text
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return "out of memory", (f"Out of memory: {text.splitlines()[0] if text else type(error).__name__}. "
                                 "Lower max_dim or max_length, turn on gradient_checkpointing, or use 4-bit on a GPU.")
    if isinstance(error, (SampleFormatError, ImageInputError)):
        return "bad data", text
    if isinstance(error, ConfigError):
        return "bad config", text
    if type(error).__name__ == "CheckpointError":
        return "error", (f"Gradient checkpointing recomputed a block differently from its forward pass "
                         f"({text.splitlines()[0] if text else 'CheckpointError'}). Set training.compile to false, "
                         "or set gradient_checkpointing to false with a smaller max_tokens_per_batch.")
    if "CUDA" in text and ("not available" in text or "no CUDA" in text or "not compiled" in text):
        return "no CUDA", text
    return "error", f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".strip()


def run(config_path: Path, data_path: Path | None, workspace: Path | None) -> int:
    started = time.time()
    folder = RunFolder(config_path.resolve().parent)
    rank = int(os.environ.get("RANK", "0"))
    is_main = rank == 0
    # the launcher's pid (the group id Kill signals) stays; this process is trainer_pid (rank 0) / rank<N>_pid
    own = {f"rank{rank}_pid": os.getpid()}
    if os.getpgid(0) == os.getpid():  # it leads a process group (torchrun gives each worker one): Kill ends it
        own[f"rank{rank}_pgid"] = os.getpid()
    if not os.environ.get(LAUNCHED_ENV):
        own.update(pid=os.getpid(), pgid=None)  # run by hand: this process is the run
    if is_main:
        folder.update_status(state="starting", trainer_pid=os.getpid(), started_at=started, reason=None, message=None,
                             **own)
    else:
        folder.update_status(**own)
    try:
        return train_and_evaluate(folder, config_path, data_path, workspace, started, is_main)
    except BaseException as error:  # recorded for the UI, then re-raised as an exit status
        if isinstance(error, KeyboardInterrupt):
            reason, message = "killed", "Interrupted (Ctrl-C) before the run finished."
        elif isinstance(error, SystemExit):
            raise
        else:
            reason, message = classify_exception(error)
            if not isinstance(error, RunFailure):
                traceback.print_exc()
        print(f"RUN FAILED ({reason}): {message}", file=sys.stderr, flush=True)
        if is_main:
            folder.update_status(state="failed", reason=reason, message=message, finished_at=time.time())
        return 1


def train_and_evaluate(folder: RunFolder, config_path: Path, data_path, workspace, started, is_main) -> int:
    from lora_core.training.config import ConfigError, launch_problems, load_config

    try:
        loaded = load_config(config_path)
    except ConfigError as error:
        raise RunFailure("bad config", str(error)) from None
    config = loaded.config
    for message in loaded.messages():
        print(f"config: {message}", flush=True)
    workspace = Path(workspace) if workspace else default_workspace(config_path)
    if data_path is None and config.data.path:
        data_path = Path(config.data.path)
        if not data_path.is_absolute():
            data_path = (config_path.parent / data_path).resolve()
    if STOP_REQUESTED.is_set() and int(os.environ.get("WORLD_SIZE", "1")) == 1:  # ranks agree below instead
        raise_stopped_before_training(folder, is_main)

    if is_main:
        folder.update_status(state="loading")
    import torch

    from lora_core.qwen.checkpoint import read_model_info, resolve_model_path
    from lora_core.training.callbacks import StopSync, TrainCounter, make_callback
    from lora_core.training.collate import Collator, ItemDataset, PackingCollator, PixelCache, takes_token_types
    from lora_core.training.compiled import compile_blocks, compile_wanted, vision_trains
    from lora_core.training.memory import choose_checkpointing, memory_budget_gib
    from lora_core.training.packing import RopePositions, fewer_packs_hint, use_packed_attention
    from lora_core.training.data import prepare_data, run_encoder
    from lora_core.training.schema import resolved_bf16
    from lora_core.training.trainer import (attach_lora, load_base_model, lora_dtype_line,
                                            make_trainer_class)
    from lora_core.training.vision_cache import VisionCache, cache_limit_bytes, expected_bytes, vision_cache_wanted

    cuda = torch.cuda.is_available()
    problems = launch_problems(config, cuda)
    if problems:
        reason = "no CUDA" if not cuda and any("CUDA" in p for p in problems) else "bad config"
        raise RunFailure(reason, problems[0])
    from transformers import set_seed

    set_seed(config.sft.seed)
    try:
        model_path = resolve_model_path(config.model, workspace)
    except ValueError as error:
        raise RunFailure("bad config", str(error)) from None
    info = read_model_info(model_path)
    encoder = run_encoder(config, model_path)
    settings = encoder.settings
    data = prepare_data(config, workspace, data_path, encoder)
    for line in data.skipped:
        print(f"skipped sample {line}", flush=True)
    print(f"data: {len(data.train)} train and {len(data.val)} validation samples from {data.source}, split by "
          f"trajectory; {len(data.skipped)} skipped; images at {settings.describe()}", flush=True)
    if is_main:
        folder.update_status(train_samples=len(data.train), val_samples=len(data.val), skipped=data.skipped[:20],
                             data=str(data_path) if data_path else None, model=str(model_path),
                             device=torch.cuda.get_device_name(0) if cuda else "CPU",
                             image_settings=settings.as_dict(), recipe=encoder.recipe.name, unknown_keys=loaded.unknown_keys)

    model = load_base_model(model_path, config, cuda)
    bf16 = resolved_bf16(config, cuda)
    model, entries = attach_lora(model, config, bf16=bf16)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"LoRA: r={config.lora.r}, alpha={config.lora.alpha:g}, trainable params: {trainable:,} || all params: "
          f"{total:,} || trainable%: {100 * trainable / total:.4f}", flush=True)
    for entry in entries:
        print(f"  target {entry.entry!r}: {len(entry.modules)} modules "
              f"({', '.join(f'{g} {c}' for g, c in entry.groups.items())})", flush=True)
    print(lora_dtype_line(config, bf16, model), flush=True)

    pixel_cache = PixelCache(encoder)
    collator = Collator(pixel_cache, takes_token_types(model))  # padded: evaluation (and packing: false)
    train_collator = collator
    if config.training.packing:
        use_packed_attention(model)
        train_collator = PackingCollator(pixel_cache, RopePositions(model, encoder.special.image_pad),
                                         config.training.max_tokens_per_batch,
                                         slots=config.sft.per_device_train_batch_size,
                                         longest=max(len(item.input_ids) for item in data.train))
        if cuda:
            train_collator.warm(data.train)
    explicit_checkpointing = config.training.gradient_checkpointing
    args = training_arguments(config, folder, bool(data.val), cuda,
                              None if explicit_checkpointing == "auto" else bool(explicit_checkpointing))
    trainer_class = make_trainer_class()
    trainer_class.vision_learning_rate = config.lora.vision_learning_rate
    counter = TrainCounter()
    sync = StopSync(folder, is_main, STOP_REQUESTED)
    callback = make_callback(folder, started, is_main, STOP_REQUESTED, sync, counter)
    trainer = trainer_class(model=model, args=args, train_dataset=ItemDataset(data.train),
                            eval_dataset=ItemDataset(data.val) if data.val else None, data_collator=collator,
                            callbacks=[callback])
    trainer.train_collator, trainer.counter = train_collator, counter
    from lora_core.training import sync_free

    if sync_free.install(model):
        trainer.image_tokens = (encoder.special.image_pad, settings.merge_size)
    vision_cache_gib = 0.0
    if config.training.packing and vision_cache_wanted(config.training.vision_cache, model):
        cache = trainer.vision_cache = VisionCache(model, cache_limit_bytes(memory_budget_gib(config) if cuda else None))
        expected = expected_bytes(data.train, model, cache.max_bytes)
        filling = time.time()
        cache.fill(model, data.train, pixel_cache, train_collator.rope)
        train_collator.cached_images = frozenset(cache.entries)
        vision_cache_gib = max(0, expected - cache.bytes) / 2**30  # what is stored already counts as resting memory
        print(f"vision cache: the vision tower is frozen, so each screenshot's output is computed once and kept on "
              f"the {'GPU' if cuda else 'CPU'}: {len(cache.entries)} screenshots ({cache.bytes / 2**30:.2f} GiB) "
              f"before training, in {time.time() - filling:.1f} s; their packs carry no pixels", flush=True)
        if is_main:
            folder.update_status(vision_cache=cache.stats())  # the Runs tab shows it while the run trains
    compiled_blocks = (compile_blocks(model, activation_budget=config.training.activation_memory_budget)
                       if compile_wanted(config.training.compile, cuda) else 0)
    trainer.compiled = bool(compiled_blocks)
    trainer.eager_fallback = config.training.compile == "auto"
    checkpointing = choose_checkpointing(config, trainer, data.train, train_collator, cuda,  # compiled if so
                                         reserved_gib=vision_cache_gib if cuda else 0.0,
                                         partial=not vision_trains(model), compiled=bool(compiled_blocks))
    if compiled_blocks:
        print(f"compile: {compiled_blocks} decoder layers and vision blocks compiled (torch.compile, dynamic "
              "shapes); the first steps include compiling", flush=True)
    set_checkpointing(trainer.args, checkpointing.on)
    batches = (f"packed micro-batches of at most {config.training.max_tokens_per_batch} tokens"
               if config.training.packing else "padded micro-batches")
    print(f"gradient_checkpointing {'on' if checkpointing.on else 'off'} ({checkpointing.setting}: "
          f"{checkpointing.reason}); {batches}", flush=True)
    if config.training.packing and data.train:
        hint = fewer_packs_hint(config.sft.per_device_train_batch_size, config.sft.gradient_accumulation_steps,
                                config.training.max_tokens_per_batch,
                                statistics.median(len(item.input_ids) for item in data.train), cuda)
        if hint:
            print(hint, flush=True)
    if is_main:
        folder.update_status(gradient_checkpointing=checkpointing.as_status(), packing=config.training.packing,
                             max_tokens_per_batch=config.training.max_tokens_per_batch,
                             compiled_blocks=compiled_blocks,
                             precision=str(next(model.parameters()).dtype).replace("torch.", ""))
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the run folder callback prints one line per log event
    if checkpointing.on:
        trainer.add_callback(checkpointed_layers_callback(checkpointing.layers))
    if sync.decide():  # every rank, after the Trainer has set up the process group: they agree
        raise_stopped_before_training(folder, is_main)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    if compiled_blocks and is_main:
        from lora_core.training.compiled import compile_stats

        stats = dict(compile_stats(), eager_from_step=trainer.fell_back_at)
        folder.update_status(compile_stats=stats)
        print(f"compile: {stats['graphs']} graphs, {stats['graph_breaks']} graph breaks", flush=True)
    if trainer.vision_cache is not None:
        stats = trainer.vision_cache.stats()
        trainer.vision_cache.close()  # its memory goes to evaluation and generation, which run the tower
        trainer.vision_cache = None
        if is_main:
            folder.update_status(vision_cache=stats)
            print(f"vision cache: {stats['screenshots']} screenshots, {stats['gib']} GiB; the tower ran for "
                  f"{stats['misses']} packs and was skipped for {stats['hits']}", flush=True)
    stopped = sync.decided  # the same on every rank (a rank's own SIGTERM does not count)
    state = trainer.state
    if data.val and not stopped and callback.last_eval_step != state.global_step:
        trainer.evaluate()  # the final eval_loss, at the last step
    if not is_main:
        return 0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else None
    trainer.model.save_pretrained(folder.adapter_path)
    folder.update_status(adapter="adapter", best_checkpoint=Path(state.best_model_checkpoint).name
                         if state.best_model_checkpoint else None, peak_gpu_memory_gib=peak,
                         peak_gpu_reserved_gib=reserved, trainable_parameters=trainable)
    print(f"adapter saved to {folder.adapter_path}" + (f"; best checkpoint {state.best_model_checkpoint}"
                                                       if state.best_model_checkpoint else ""), flush=True)
    if stopped:
        folder.update_status(state="stopped", finished_at=time.time(), eta_s=0,
                             message=f"Stopped at step {state.global_step} of {state.max_steps}; the last checkpoint "
                                     "and the adapter are kept.")
        return 0
    if config.evaluation.after_training and data.val:
        from lora_core.training.evaluate import evaluate_items, write_evaluation

        folder.update_status(state="evaluating")
        eval_loss = folder.last_eval_loss()
        with torch.compiler.set_stance("force_eager"):  # generation would recompile the blocks per length
            result = evaluate_items(trainer.model, data.val, pixel_cache, encoder, info, config,
                                    stop_check=lambda: STOP_REQUESTED.is_set() or folder.stop_requested(),
                                    eval_loss=eval_loss)
        write_evaluation(folder, result, settings, trained_settings=settings)
    folder.update_status(state="finished", finished_at=time.time(), eta_s=0,
                         message=f"Finished {state.global_step} steps in {time.time() - started:.0f} s.")
    return 0


def checkpointed_layers_callback(layers: int | None):
    """Once the Trainer has switched checkpointing on (when training starts), off again for frozen blocks and
    for the decoder layers past the first `layers` (None: every decoder layer stays checkpointed); compiled
    blocks recompute at the forward pass's thread count."""
    from transformers import TrainerCallback

    from lora_core.training.compiled import keep_thread_count_in_recompute, stop_checkpointing_frozen_blocks
    from lora_core.training.memory import apply_checkpointed_layers

    class CheckpointedLayers(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if model is not None:
                stop_checkpointing_frozen_blocks(model)
                apply_checkpointed_layers(model, layers)
                keep_thread_count_in_recompute(model)

    return CheckpointedLayers()


def set_checkpointing(args, on: bool) -> None:
    """TrainingArguments' checkpointing flag, under this transformers release's name; read when train() starts."""
    import dataclasses

    from lora_core.training.arguments import checkpointing_field

    setattr(args, checkpointing_field({f.name for f in dataclasses.fields(args)}), on)


def raise_stopped_before_training(folder: RunFolder, is_main: bool):
    if is_main:
        folder.update_status(state="stopped", finished_at=time.time(),
                             message="Stopped before training began; nothing was trained.")
    raise SystemExit(0)


def request_stop(signum, frame) -> None:
    if RUN_FOLDER is not None and RUN_FOLDER.kill_path.exists():  # the Kill button: end now, no checkpoint
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    STOP_REQUESTED.set()


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, request_stop)  # first: a stop during imports still counts
    parser = argparse.ArgumentParser(prog="python -m lora_core.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="runs/<id>/config.yaml; the run writes beside it")
    parser.add_argument("--data", type=Path, help="native sample JSONL (default: the config's data.path, else the "
                                                  "demo trajectories)")
    parser.add_argument("--workspace", type=Path, help="where the embedded model and demo data live "
                                                       "(default: two folders above runs/<id>/)")
    args = parser.parse_args(argv)
    config_path = args.config
    global RUN_FOLDER
    RUN_FOLDER = RunFolder(config_path.resolve().parent)
    if not config_path.is_file():
        print(f"error: no config file at {config_path}", file=sys.stderr)
        return 2
    if not os.environ.get(LOG_ATTACHED_ENV):
        log = open(config_path.parent / "train.log", "a", buffering=1, encoding="utf-8")
        sys.stdout, sys.stderr = Tee(sys.stdout, log), Tee(sys.stderr, log)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRACKIO_DIR", str(config_path.resolve().parent / "trackio"))  # report_to: trackio
    data = args.data.resolve() if args.data else None
    return run(config_path, data, args.workspace)


if __name__ == "__main__":
    raise SystemExit(main())
