"""GPU benchmark of the Runs tab's trainer: a randomly initialised Qwen3-VL-2B (its real configuration, FACTS
"Real sizes"), LoRA r=16 on the seven LLM projections, gradient checkpointing on, bf16 with and without 4-bit,
at max_dim 520 / 768 / 1024. Every scenario is a real `python -m lora_core.train` run, as the app launches it.

    python bench/bench_runs_gpu.py --out bench/out/gpu [--steps 30] [--tokenizer-from FOLDER]
    (tokenizer, template and processor files: FOLDER, default the embedded checkpoint in --workspace)
    python bench/bench_runs_gpu.py --tiny --steps 6        # a dry run of the script on the CPU

Two data sets: the demo trajectories sliced one step per sample (short: 0.3–0.9 k text tokens plus the
screenshot), and "long" samples of about 6 k tokens (a long action history, max_length 6200 like the seed's
§8.6.2), the case the seed's 12–16 GB estimate is about. The long case also runs with the model's own
full-vocabulary loss (LORA_TRAIN_FULL_LOGITS=1), which is what a plain Trainer script does.
Figures: median step time, tokens/s (non-padding input tokens, images included), peak GPU memory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json",
                   "preprocessor_config.json", "video_preprocessor_config.json",
                   "generation_config.json")


def build_random_2b(folder: Path, tokenizer_from: Path) -> Path:
    """Qwen3-VL-2B's configuration with random weights (seeded), saved like a checkpoint, in bf16.

    Its special ids (image pads, padding, end of turn) are read from the tokenizer it is saved with."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from lora_core.analysis.coverage import qwen3vl_2b_config
    from lora_core.qwen.checkpoint import load_tokenizer
    from lora_core.qwen.special_tokens import read_special_tokens

    if (folder / "model.safetensors.index.json").exists() or (folder / "model.safetensors").exists():
        return folder
    missing = [name for name in ("tokenizer.json", "tokenizer_config.json") if not (tokenizer_from / name).exists()]
    if missing:
        raise SystemExit(f"--tokenizer-from {tokenizer_from} has no {missing[0]}; point it at a Qwen3-VL checkpoint.")
    tokenizer = load_tokenizer(str(tokenizer_from))
    special = read_special_tokens(tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(qwen3vl_2b_config(tokenizer)).to(torch.bfloat16)
    model.generation_config.pad_token_id = special.pad
    model.generation_config.eos_token_id = [special.im_end, special.endoftext]
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, folder / name)
    del model
    return folder


def long_dataset(workspace: Path, target_history: int = 70) -> Path:
    """Samples of ~6 k tokens: a long history of earlier answers, then the current screenshot and the answer."""
    from lora_core.data.agent import format_answer
    from demo import ensure_demo_data

    demo = ensure_demo_data(workspace)
    answers = [format_answer(step.thinking, dict(step.action, **({"coordinate": list(step.target.center)}
                                                                 if step.target else {})))
               for trajectory in demo.trajectories for step in trajectory.steps]
    lines = []
    for index, trajectory in enumerate(demo.trajectories[:4]):
        for number, step in enumerate(trajectory.steps[:2]):
            history = [answers[(index * 7 + number + k) % len(answers)] for k in range(target_history)]
            messages = [{"role": "system", "content": "You are a GUI agent."},
                        {"role": "user", "content": trajectory.task}]
            messages += [{"role": "assistant", "content": text} for text in history]
            messages += [{"role": "user", "content": [{"type": "image", "image": f"screens/{step.screenshot}.png"},
                                                      {"type": "text", "text": "Current screenshot"}]},
                         {"role": "assistant", "content": answers[(index * 3 + number) % len(answers)]}]
            lines.append(json.dumps({"id": f"long-{index}-{number}", "messages": messages,
                                     "metadata": {"source": trajectory.id}}))
    path = demo.root / "long.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def scenario_config(model: Path, max_dim: int, four_bit: bool, steps: int, max_length: int | None, bf16: bool,
                    evaluate: bool = False):
    from lora_core.training.config import LLM_TARGETS, RunConfig

    config = RunConfig()
    config.model = str(model)
    config.lora.r, config.lora.alpha, config.lora.dropout = 16, 32, 0.05
    config.lora.target_modules = list(LLM_TARGETS)
    sft = config.sft
    sft.max_steps, sft.learning_rate, sft.logging_steps, sft.warmup_steps = steps, 1e-4, 1, 0
    sft.per_device_train_batch_size, sft.gradient_accumulation_steps = 1, 1
    sft.eval_strategy, sft.save_strategy, sft.load_best_model_at_end = "no", "no", False
    sft.bf16, sft.max_length = bf16, max_length
    config.training.gradient_checkpointing = True
    config.training.use_4bit = four_bit
    config.training.max_dim = max_dim
    config.data.val_fraction = 0.2 if evaluate else 0.0
    config.evaluation.after_training = evaluate  # one scenario also checks eval loss + generation on the GPU
    config.evaluation.max_samples, config.evaluation.max_new_tokens = 2, 32
    if evaluate:
        sft.eval_strategy, sft.eval_steps = "steps", steps
    return config


def run_scenario(workspace: Path, name: str, config, data: Path | None, full_logits: bool = False) -> dict:
    from lora_core.training.config import dump_yaml
    from lora_core.training.run_folder import RunFolder

    folder = workspace / "runs" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_yaml(config))
    command = [sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"), "--workspace",
               str(workspace)] + (["--data", str(data)] if data else [])
    env = {**os.environ, "LORA_RUN_LOG_ATTACHED": "1", "PYTHONPATH": str(ROOT)}
    if full_logits:
        env["LORA_TRAIN_FULL_LOGITS"] = "1"
    started = time.time()
    with open(folder / "train.log", "ab") as log:
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.time() - started
    status = RunFolder(folder).read_status()
    metrics = [m for m in RunFolder(folder).read_metrics() if m.get("kind") == "train"]
    result = {"scenario": name, "exit": code, "state": status.get("state"), "reason": status.get("reason"),
              "message": status.get("message"), "wall_s": round(wall, 1), "device": status.get("device"),
              "peak_gib": status.get("peak_gpu_memory_gib"), "reserved_gib": status.get("peak_gpu_reserved_gib"),
              "trainable": status.get("trainable_parameters"), "steps": len(metrics),
              "eval": (RunFolder(folder).read_eval() or {}).get("metrics")}
    warm = metrics[min(5, len(metrics) - 2):] if len(metrics) >= 3 else []
    if len(warm) >= 2:
        gaps = [b["time"] - a["time"] for a, b in zip(warm, warm[1:])]
        result["step_s"] = round(statistics.median(gaps), 4)
        ordered = sorted(gaps)
        result["step_s_p10_p90"] = [round(ordered[len(ordered) // 10], 4), round(ordered[-1 - len(ordered) // 10], 4)]
        tokens = warm[-1].get("num_input_tokens_seen", 0) - warm[0].get("num_input_tokens_seen", 0)
        result["tokens_per_s"] = round(tokens / (warm[-1]["time"] - warm[0]["time"]), 1)
        result["tokens_per_step"] = round(tokens / (len(warm) - 1), 1)
    if code != 0 or status.get("state") != "finished":
        result["log_tail"] = RunFolder(folder).log_tail(15)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/out/gpu")))
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/bench-runs-gpu"))
    parser.add_argument("--tokenizer-from", type=Path, help="checkpoint folder whose tokenizer, template and "
                                                            "processor files the 2B copy gets (default: the "
                                                            "embedded checkpoint in --workspace)")
    parser.add_argument("--tiny", action="store_true", help="dry run with the embedded tiny model on the CPU")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    print(f"machine: {machine()}; GPU: {torch.cuda.get_device_name(0) if cuda else 'none'}", flush=True)
    if args.tiny:
        from lora_core.qwen.checkpoint import ensure_embedded_checkpoint

        model = ensure_embedded_checkpoint(args.workspace)
    else:
        from lora_core.qwen.checkpoint import ensure_embedded_checkpoint

        started = time.time()
        tokenizer_from = args.tokenizer_from or ensure_embedded_checkpoint(args.workspace)
        model = build_random_2b(args.workspace / "models" / "qwen3vl-2b-random", tokenizer_from)
        print(f"random Qwen3-VL-2B checkpoint ready in {time.time() - started:.0f} s at {model}", flush=True)
    long_data = long_dataset(args.workspace)
    bf16 = cuda
    scenarios = []
    for max_dim in (520, 768, 1024):
        for four_bit in (False, True):
            scenarios.append((f"demo-{max_dim}-{'4bit' if four_bit else 'bf16'}",
                              scenario_config(model, max_dim, four_bit, args.steps, 6200, bf16,
                                              evaluate=max_dim == 520), None, False))
    for four_bit in (False, True):
        scenarios.append((f"long-1024-{'4bit' if four_bit else 'bf16'}",
                          scenario_config(model, 1024, four_bit, args.steps, 6200, bf16), long_data, False))
    scenarios.append(("long-1024-bf16-full-logits", scenario_config(model, 1024, False, args.steps, 6200, bf16),
                      long_data, True))
    results = []
    for name, config, data, full_logits in scenarios:
        if args.only and name not in args.only:
            continue
        if config.training.use_4bit and not cuda:
            continue
        result = run_scenario(args.workspace, name, config, data, full_logits)
        results.append(result)
        print(json.dumps(result), flush=True)
        (args.out / "gpu_bench.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    print("\nscenario                        step s   tokens/s  tokens/step  peak GiB  reserved GiB")
    for r in results:
        print(f"{r['scenario']:30} {r.get('step_s', float('nan')):7.3f} {r.get('tokens_per_s', float('nan')):10.0f} "
              f"{r.get('tokens_per_step', float('nan')):11.0f} {r.get('peak_gib') or float('nan'):9.2f} "
              f"{r.get('reserved_gib') or float('nan'):12.2f}  {r['state']}")


if __name__ == "__main__":
    main()
