"""The Trainer callback that keeps the run folder current: status.json and metrics.jsonl as training goes,
and a stop request (SIGTERM or a STOP file) turned into save + stop.

With several ranks only rank 0 reads the stop request; every `LORA_STOP_SYNC_STEPS` steps (10) it broadcasts
its decision over a CPU (gloo) group, so all ranks stop on the same step and no GPU sync is added."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from lora_core.training.run_folder import RunFolder

STOP_SYNC_ENV = "LORA_STOP_SYNC_STEPS"
DEFAULT_STOP_SYNC_STEPS = 10


def stop_sync_steps() -> int:
    try:
        return max(1, int(os.environ.get(STOP_SYNC_ENV, DEFAULT_STOP_SYNC_STEPS)))
    except ValueError:
        return DEFAULT_STOP_SYNC_STEPS


class StopSync:
    """Whether the run stops: rank 0 decides (its SIGTERM flag or the STOP file); other ranks learn it by a
    broadcast on a gloo group of their own. Every rank must call `decide` at the same points."""

    def __init__(self, folder: RunFolder, is_main: bool, stop: threading.Event, every: int | None = None):
        self.folder, self.is_main, self.stop = folder, is_main, stop
        self.every = every or stop_sync_steps()
        self.rank = int(os.environ.get("RANK", "0"))
        self.group = None
        self.decided = False  # the agreed decision: every rank has the same value

    @staticmethod
    def distributed() -> bool:
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def wish(self) -> bool:
        return self.stop.is_set() or self.folder.stop_requested()

    def due(self, step: int) -> bool:
        """Alone, every step (reading a flag and a file costs nothing); with ranks, every `every` steps."""
        return not self.distributed() or step % self.every == 0

    def decide(self) -> bool:
        if self.decided:
            return True
        if self.distributed():
            import torch
            import torch.distributed as dist

            if self.group is None:
                self.group = dist.new_group(backend="gloo")  # CPU tensors: no GPU sync for the decision
            flag = torch.tensor([1 if self.is_main and self.wish() else 0], dtype=torch.int32)
            dist.broadcast(flag, src=0, group=self.group)
            stop = bool(flag.item())
        else:
            stop = self.wish()
        if stop:
            self.decided = True
            self.stop.set()
        return stop


PROFILE_ENV = "LORA_PROFILE_AT"  # benchmarks only: profile 3 steps from this one into profile.json
STATUS_EVERY_S = 1.0  # status.json is rewritten at most this often while training (and on every log step)


class TrainCounter:
    """What this process has trained on, from the collator's counts (Python ints: no GPU sync)."""

    def __init__(self):
        self.input_tokens = self.trained_tokens = self.samples = 0

    def add(self, batch: dict) -> None:
        self.input_tokens += batch.get("input_tokens", 0)
        self.trained_tokens += batch.get("trained_tokens", 0)
        self.samples += batch.get("samples", 0)

    def as_status(self, elapsed: float) -> dict:
        return {"tokens_seen": self.input_tokens, "trained_tokens_seen": self.trained_tokens,
                "samples_seen": self.samples,
                "tokens_per_s": round(self.input_tokens / elapsed, 1) if elapsed > 0 else None}


def make_callback(folder: RunFolder, started: float, is_main: bool, stop: threading.Event,
                  sync: StopSync | None = None, counter: TrainCounter | None = None):
    """`stop`: the run's stop flag (set by SIGTERM); a STOP file in the folder sets it too. `sync` decides for
    all ranks (one is made when not given). `counter`: the trainer's counts, for progress and tokens/s."""
    from transformers import TrainerCallback

    sync = sync or StopSync(folder, is_main, stop)
    counter = counter or TrainCounter()

    class RunFolderCallback(TrainerCallback):
        """Writes status.json and metrics.jsonl as the Trainer goes; turns a stop request into save + stop."""

        def __init__(self):
            self.train_started = None
            self.last_eval_step = None
            self.last_status_at = 0.0
            self.sync = sync
            self.counter = counter

        def progress(self, state) -> dict:
            done = max(state.global_step, 1)
            elapsed = time.time() - self.train_started
            eta = elapsed / done * max(state.max_steps - state.global_step, 0)
            return {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                    "eta_s": round(eta, 1), "elapsed_s": round(elapsed, 1), **counter.as_status(elapsed)}

        def on_step_begin(self, args, state, control, **kwargs):
            if is_main and os.environ.get(PROFILE_ENV) and state.global_step == int(os.environ[PROFILE_ENV]):
                self.profiler = StepProfiler(folder)

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_started = time.time()
            if is_main:
                folder.update_status(state="training", step=state.global_step, max_steps=state.max_steps,
                                     epoch=state.epoch or 0.0, train_started_at=self.train_started)

        def on_step_end(self, args, state, control, **kwargs):
            profiler = getattr(self, "profiler", None)
            if profiler is not None and profiler.step_done():
                self.profiler = None
            now = time.time()
            if is_main and (now - self.last_status_at >= STATUS_EVERY_S or state.global_step >= state.max_steps):
                self.last_status_at = now
                folder.update_status(**self.progress(state))
            if sync.due(state.global_step) and sync.decide():
                control.should_save = True  # the last checkpoint is kept
                control.should_training_stop = True
                print(f"rank {sync.rank}: stopping at step {state.global_step} (rank 0's decision)", flush=True)
                folder.update_status(**{f"rank{sync.rank}_stopped_at_step": state.global_step},
                                     **({"state": "stopping"} if is_main else {}))
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not is_main or not logs:
                return
            kind = "eval" if any(k.startswith("eval_") for k in logs) else \
                "summary" if "train_loss" in logs else "train"
            if kind == "eval":
                self.last_eval_step = state.global_step
            record = {"kind": kind, "step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                      "time": round(time.time() - started, 3)}
            record.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in logs.items()})
            if kind == "train":
                record["num_input_tokens_seen"] = counter.input_tokens
                record["samples_seen"] = counter.samples
                folder.update_status(**self.progress(state))
            folder.append_metric(record)
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate", "grad_norm"))
            print(f"[{kind}] step {state.global_step}/{state.max_steps}: {shown}", flush=True)

        def on_save(self, args, state, control, **kwargs):
            if is_main:
                folder.update_status(last_checkpoint=f"checkpoint-{state.global_step}",
                                     best_checkpoint=Path(state.best_model_checkpoint).name
                                     if state.best_model_checkpoint else None)

    return RunFolderCallback()


class StepProfiler:
    """torch.profiler over 3 training steps; the GPU's busy share counted as ../shared/bench/plain_recipe.py
    counts it (kernel time over wall time), written to the run folder's profile.json."""

    STEPS = 3

    def __init__(self, folder: RunFolder):
        import torch

        self.folder, self.steps = folder, 0
        self.cuda = torch.cuda.is_available()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
            torch.cuda.synchronize()
        self.profile = torch.profiler.profile(activities=activities)
        self.profile.__enter__()
        self.started = time.perf_counter()

    def step_done(self) -> bool:
        import json

        import torch
        from torch.autograd import DeviceType

        self.steps += 1
        if self.steps < self.STEPS:
            return False
        if self.cuda:
            torch.cuda.synchronize()
        self.profile.__exit__(None, None, None)
        wall = time.perf_counter() - self.started
        events = self.profile.key_averages()
        gpu = sum(e.self_device_time_total for e in events) / 1e6
        # the kernels alone: the sum above counts a kernel launched by an operator twice (its row and the
        # operator's), as plain_recipe.py does; compiled graphs' Triton kernels have no operator row
        kernels = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / 1e6
        top = sorted(events, key=lambda e: -e.self_device_time_total)[:12]
        # the profiler's own stop (collecting the trace) is inside the window's wall time, as in plain_recipe.py
        stats = getattr(getattr(self.profile, "profiler", None), "_stats", None)
        stop_us = getattr(stats, "profiler_disable_call_duration_us", None)
        host_top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
        counts = {e.key: e.count for e in events}
        (self.folder.path / "profile.json").write_text(json.dumps({
            "wall_3_steps_s": round(wall, 3), "gpu_kernel_s": round(gpu, 3), "gpu_busy": round(gpu / wall, 3),
            "kernels_only_s": round(kernels, 3),
            "profiler_stop_s": None if stop_us is None else round(stop_us / 1e6, 3),
            "top": [(e.key[:60], round(e.self_device_time_total / 1e3, 1)) for e in top],
            # where the host spends the window (ms, calls): what the GPU waits for when it is not busy
            "host_top": [(e.key[:60], round(e.self_cpu_time_total / 1e3, 1), e.count) for e in host_top],
            "kernel_launches": sum(n for key, n in counts.items() if key in LAUNCH_EVENTS),
            "host_syncs": sum(n for key, n in counts.items() if key in SYNC_EVENTS),
            "gpu_idle": gpu_idle(self.profile.events(), wall)}))
        return True


IDLE_BUCKETS_US = (10, 100, 1000)  # a gap's length: launch-bound gaps are short, stalls long
IDLE_NAMED_US = 50  # gaps at least this long are put down to what the host was doing in them


def gpu_idle(events, wall_s: float) -> dict:
    """Where the GPU waits in a profiled window: the share of wall time some kernel ran (their union, unlike
    the summed `gpu_busy`), the idle gaps between kernels by length, and, for gaps of IDLE_NAMED_US or more,
    the host operations that were running (the innermost, and the outermost below the step) at each gap's
    middle, by idle time."""
    from collections import Counter

    from torch.autograd import DeviceType

    busy, gaps = kernels_union(sorted((e.time_range.start, e.time_range.end) for e in events
                                      if e.device_type == DeviceType.CUDA))
    bounds = (0,) + IDLE_BUCKETS_US + (float("inf"),)
    by_length = {}
    for low, high in zip(bounds, bounds[1:]):
        lengths = [b - a for a, b in gaps if low <= b - a < high]
        label = f"{low}-{high}us" if high != float("inf") else f">={low}us"
        by_length[label] = [len(lengths), round(sum(lengths) / 1e3, 1)]
    named = sorted(((a + b) / 2, b - a) for a, b in gaps if b - a >= IDLE_NAMED_US)
    host = sorted(((e.time_range.start, e.time_range.end, e.name) for e in events
                   if e.device_type == DeviceType.CPU and not e.name.startswith("ProfilerStep")),
                  key=lambda span: span[0])
    innermost, outermost, active, next_host = Counter(), Counter(), [], 0
    for middle, length in named:  # a sweep: the host spans open at each gap's middle
        while next_host < len(host) and host[next_host][0] <= middle:
            active.append(host[next_host])
            next_host += 1
        active = [span for span in active if span[1] >= middle]
        if not active:
            innermost["(no host operation)"] += length
            continue
        innermost[min(active, key=lambda span: span[1] - span[0])[2]] += length
        outermost[max(active, key=lambda span: span[1] - span[0])[2]] += length

    def top(by_name: Counter):
        return [(name[:60], round(us / 1e3, 1)) for name, us in by_name.most_common(10)]

    return {"kernels_union_ms": round(busy / 1e3, 1), "busy_share": round(busy / 1e6 / wall_s, 3) if wall_s else None,
            "gaps_ms_by_length": by_length, "idle_under_host_innermost_ms": top(innermost),
            "idle_under_host_outermost_ms": top(outermost)}


def kernels_union(spans: list) -> tuple[float, list]:
    """The time some kernel of `spans` ((start, end), sorted) ran, and the gaps between them."""
    busy, gaps, end = 0.0, [], None
    for start, stop in spans:
        if end is not None and start <= end:
            busy += max(0.0, stop - end)
            end = max(end, stop)
            continue
        if end is not None:
            gaps.append((end, start))
        busy += stop - start
        end = stop
    return busy, gaps


LAUNCH_EVENTS = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"}
SYNC_EVENTS = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"}
