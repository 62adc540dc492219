"""The Trainer callback that keeps the run folder current: status.json and metrics.jsonl as training goes,
and a stop request (SIGTERM or a STOP file) turned into save + stop at the next step."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from lora_core.training.run_folder import RunFolder


def make_callback(folder: RunFolder, started: float, is_main: bool, stop: threading.Event):
    """`stop`: the run's stop flag (set by SIGTERM); a STOP file in the folder sets it too."""
    from transformers import TrainerCallback

    class RunFolderCallback(TrainerCallback):
        """Writes status.json and metrics.jsonl as the Trainer goes; turns a stop request into save + stop."""

        def __init__(self):
            self.train_started = None
            self.last_eval_step = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_started = time.time()
            if is_main:
                folder.update_status(state="training", step=state.global_step, max_steps=state.max_steps,
                                     epoch=state.epoch or 0.0, train_started_at=self.train_started)

        def on_step_end(self, args, state, control, **kwargs):
            if is_main:
                done = max(state.global_step, 1)
                elapsed = time.time() - self.train_started
                eta = elapsed / done * max(state.max_steps - state.global_step, 0)
                folder.update_status(step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
                                     eta_s=round(eta, 1), elapsed_s=round(elapsed, 1))
            if stop.is_set() or folder.stop_requested():
                stop.set()
                control.should_save = True  # the last checkpoint is kept
                control.should_training_stop = True
                if is_main:
                    folder.update_status(state="stopping")
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
