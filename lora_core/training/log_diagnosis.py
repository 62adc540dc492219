"""Reading train.log: the known warnings explained (the seed's §1 table), and why a run failed.

This module imports nothing heavy: the app imports it at start.
"""
from __future__ import annotations

import re
import signal
from dataclasses import dataclass

# what status.json may give as a failed run's reason; the trainer logs "RUN FAILED (reason): sentence"
FAILURE_REASONS = ("out of memory", "no CUDA", "bad data", "bad config", "killed", "error")

# ----------------------------------------------------------------- the seed's §1 warnings, explained


@dataclass(frozen=True)
class KnownWarning:
    pattern: str
    title: str
    explanation: str
    source: str = "seed §1"


KNOWN_WARNINGS = [
    KnownWarning(r"tokenizer.*deprecated|deprecated.*\btokenizer\b|processing_class",
                 "tokenizer is deprecated",
                 "Trainer's `tokenizer` argument was renamed `processing_class` in transformers 5. Harmless now; "
                 "code that passes `tokenizer=` must change when it upgrades."),
    KnownWarning(r"kernel version .*below|below the recommended minimum",
                 "old Linux kernel",
                 "The Linux kernel is older than PyTorch recommends (CentOS 7 ships 3.10). Training usually works; "
                 "in rare cases a process can hang."),
    KnownWarning(r"already (on|dispatched on) multiple devices|model is already on multiple devices",
                 "model already on multiple devices",
                 "The model was spread over several GPUs when it loaded, so the Trainer does not move it again. "
                 "Expected with several GPUs."),
    KnownWarning(r"new PAD/BOS/EOS tokens|PAD/BOS/EOS tokens that differ",
                 "tokenizer has new PAD/BOS/EOS tokens",
                 "The tokenizer's special tokens differ from the model config; transformers aligned the config to "
                 "the tokenizer. Qwen uses ChatML (<|im_start|>/<|im_end|>) and has no BOS token, so "
                 "`bos_token_id: None` is correct (seed §1.1). Nothing to do."),
    KnownWarning(r"use_cache=True.*incompatible with gradient checkpointing|use_cache.*checkpointing|"
                 r"[Cc]aching is incompatible with gradient checkpointing",
                 "use_cache=True incompatible with gradient checkpointing",
                 "Gradient checkpointing recomputes activations, which cannot coexist with the KV cache, so the "
                 "cache is switched off for training. Expected; generation after training uses the cache again."),
    KnownWarning(r"gemm_4bit_forward from kernels-community|pip install kernels",
                 "bitsandbytes: kernels package missing",
                 "bitsandbytes looks for optional CPU 4-bit kernels from a hub package; it is deliberately not "
                 "installed (it would download kernels). Harmless: 4-bit training runs on CUDA only here.",
                 "ours"),
    KnownWarning(r"`gradient_checkpointing` is deprecated|is_gradient_checkpointing` is deprecated",
                 "gradient_checkpointing renamed",
                 "transformers 5 calls the flag `activation_checkpointing`; the old name still works until v6. "
                 "The seed's YAML key `gradient_checkpointing` is translated for you.",
                 "ours"),
]


def explain_line(line: str) -> KnownWarning | None:
    for known in KNOWN_WARNINGS:
        if re.search(known.pattern, line, re.I):
            return known
    return None


def explain_log(lines: list[str]) -> list[tuple[str, KnownWarning | None]]:
    return [(line, explain_line(line)) for line in lines]


def recognised_warnings(lines: list[str]) -> list[KnownWarning]:
    seen = []
    for _, known in explain_log(lines):
        if known is not None and known not in seen:
            seen.append(known)
    return seen


# ----------------------------------------------------------------- failures


def classify_failure(returncode: int | None, log_lines: list[str]) -> tuple[str, str]:
    """Why a process ended without recording a result: (reason, sentence)."""
    text = "\n".join(log_lines)
    last = next((line for line in reversed(log_lines) if line.strip()), "")
    recorded = re.search(r"RUN FAILED \(([^)]*)\): (.*)", text)
    if recorded and recorded.group(1) in FAILURE_REASONS:
        return recorded.group(1), recorded.group(2)
    if re.search(r"out of memory|OutOfMemoryError|MemoryError", text, re.I):
        return "out of memory", f"The run ran out of memory: {last.strip()[:300]}"
    if re.search(r"no CUDA|CUDA (is )?not available|Torch not compiled with CUDA|no NVIDIA driver", text, re.I):
        return "no CUDA", f"The run needs a CUDA GPU and found none: {last.strip()[:300]}"
    if returncode is not None and returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return "killed", ("The process was killed (SIGKILL): by a user, or by the system when memory ran out. "
                          "No checkpoint was written after the last save.")
    if returncode is not None and returncode < 0:
        return "killed", f"The process was ended by signal {-returncode} before it recorded a result."
    if returncode is None:
        return "killed", ("The process is gone without recording a result (killed, or the machine restarted). "
                          "Checkpoints already saved are kept.")
    return "error", f"The process exited with status {returncode}: {last.strip()[:300]}"
