"""Our trainer beside the plain HF Trainer + PEFT recipe (`../shared/bench/plain_recipe.py`), on one GPU, on the
same samples: a randomly initialised Qwen3-VL-2B (its real configuration), LoRA r=16 on the seven LLM
projections.

    python bench/bench_train_gpu.py --plain PATH/plain_recipe.py [--steps 20] [--out bench/out/train_gpu]
    python bench/bench_train_gpu.py --tiny --steps 16         # a dry run on the CPU with the embedded model

On a lent GPU machine, run it on the stack requirements.txt pins: `bash bench/device_wheels.sh` here makes .whl/
(carry it), and the script's header gives the install line to put before the command there.

Two scenarios: the demo trajectories at max_dim 1024 (one step per sample, ~750 tokens each) and "long" samples
of ~5.8 k tokens (a long action history, max_length 6200 as in the seed's §8.6.2).
- Our encoder writes both as the plain recipe's input (input_ids, labels, each image's pre-resize size and
  pixel budget), so both sides train the same tokens; the plain recipe runs at batch 1/8/22 (demo) and 1/2/4
  (long) with its own profile at batch 1.
- Our trainer runs as the app launches it (`python -m lora_core.train`), with each row's settings in the table;
  by default the two goal rows (a step's samples in one pack, compiled blocks, checkpointing auto), `--rows`
  picks others from OUR_ROWS (eager blocks, other token budgets, checkpointing off). Both goal rows and every
  plain batch take longer than one 10-minute device call: run `--rows 0 --plain-batch demo=1,8,22` and
  `--rows 2 --plain-batch long=1,2,4`, each side by side in its own call. One row takes 2–4 minutes, most of
  it compiling; the profiled window's profile.json also names where the host spends its time (`host_top`,
  kernel launches and host syncs) and where the GPU waits (`gpu_idle`: the kernels' union over the window,
  the idle gaps by length, the host operations running in the long ones).
- Tokens/s counts non-padding input tokens (image pads included) after 5 warm-up steps, leaving out the
  logging interval that holds the 3 profiled steps; GPU busy is kernel time over wall time in that
  torch.profiler window, summed over every profiler row as plain_recipe.py --profile sums it (operator rows and
  their kernels' rows both count, so it can pass 100 %: read it as a comparison, not a share); MFU is 6·N·tokens/s over
  989 TFLOP/s, N the LLM's parameters (embeddings and lm_head left out) for every token plus the vision
  tower's for each of an image token's 4 patches; recompute not counted.
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

H200_BF16_FLOPS = 989e12
WARMUP_STEPS = 5
PROFILE_AT = 10
LOG_EVERY = 5  # a log reads the loss back (a sync): tokens/s is taken between logs
CHECKPOINT_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json",
                    "preprocessor_config.json", "video_preprocessor_config.json", "generation_config.json")
PLAIN_BATCHES = {"demo": [1, 8, 22], "long": [1, 2, 4]}
# Our rows: (scenario, label, per_device_train_batch_size, max_tokens_per_batch, gradient_checkpointing, compile
# [, vision_cache[, activation_memory_budget[, lora_dtype]]]); checkpointing auto checkpoints as many decoder
# layers as the memory goal needs
OUR_ROWS = [
    ("demo", "packed 22 / 20k, ckpt auto, compiled", 22, 20480, "auto", "auto"),
    ("demo", "packed 22 / 6k, ckpt auto, compiled", 22, 6144, "auto", "auto"),
    ("long", "packed 4 / 24k, ckpt auto, compiled", 4, 24576, "auto", "auto"),
    ("long", "packed 4 / 6.2k, ckpt auto, compiled", 4, 6200, "auto", "auto"),
    ("demo", "packed 22 / 20k, ckpt auto, eager", 22, 20480, "auto", False),
    ("long", "packed 4 / 24k, ckpt auto, eager", 4, 24576, "auto", False),
    ("demo", "packed 22 / 6k, ckpt off, compiled", 22, 6144, False, "auto"),
    ("long", "packed 4 / 12.4k, ckpt off, compiled", 4, 12400, False, "auto"),
    ("demo", "packed 22 / 20k, ckpt on, compiled", 22, 20480, True, "auto"),
    ("demo", "packed 22 / 8.7k, ckpt auto, compiled", 22, 8704, "auto", "auto"),
    ("long", "packed 4 / 12.4k, ckpt auto, compiled", 4, 12400, "auto", "auto"),
    ("demo", "packed 22 / 4k, ckpt auto, compiled", 22, 4096, "auto", "auto"),
    ("demo", "packed 22 / 6k, ckpt auto, compiled, no vision cache", 22, 6144, "auto", "auto", False),
    ("demo", "packed 22 / 6k, ckpt auto, compiled, activations 0.5", 22, 6144, "auto", "auto", "auto", 0.5),
    ("long", "packed 4 / 6.2k, ckpt auto, compiled, activations 0.5", 4, 6200, "auto", "auto", "auto", 0.5),
    ("demo", "packed 22 / 20k, ckpt auto, compiled, activations 0.5", 22, 20480, "auto", "auto", "auto", 0.5),
    ("demo", "packed 22 / 12k, ckpt auto, compiled, activations 0.5", 22, 12288, "auto", "auto", "auto", 0.5),
    ("long", "packed 4 / 12.4k, ckpt auto, compiled, activations 0.5", 4, 12400, "auto", "auto", "auto", 0.5),
    ("long", "packed 4 / 6.2k, ckpt off, compiled, all activations", 4, 6200, False, "auto"),
    ("long", "packed 4 / 6.2k, ckpt auto, compiled, activations 0.75", 4, 6200, "auto", "auto", "auto", 0.75),
    ("long", "packed 4 / 24k, ckpt auto, compiled, LoRA weights bf16", 4, 24576, "auto", "auto", "auto", None, "bf16"),
]
# One per scenario, every memory setting on auto, each a step in one pack: demo's 22 samples (auto checkpoints 8
# layers) and long's 4 (13 layers). Both met all four goals on 2026-12-07. Packs of one long sample (row 3) run
# cuDNN's attention but launch 3× the kernels a token, and the host's per-block cost (Dynamo's guards, the
# compiled graphs' Python) left the GPU idle a third of the time (busy 64 %).
GOAL_ROWS = (0, 2)
MEMORY_GOAL_GIB = 24


def build_random_2b(folder: Path, tokenizer_from: Path) -> Path:
    """Qwen3-VL-2B's configuration with random weights (seeded), saved in bf16 with the embedded checkpoint's
    tokenizer, template and processor files."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from lora_core.analysis.coverage import qwen3vl_2b_config
    from lora_core.qwen.checkpoint import load_tokenizer
    from lora_core.qwen.special_tokens import read_special_tokens

    if (folder / "model.safetensors.index.json").exists() or (folder / "model.safetensors").exists():
        return folder
    tokenizer = load_tokenizer(str(tokenizer_from))
    special = read_special_tokens(tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen3VLForConditionalGeneration(qwen3vl_2b_config(tokenizer)).to(torch.bfloat16)
    model.generation_config.pad_token_id = special.pad
    model.generation_config.eos_token_id = [special.im_end, special.endoftext]
    model.save_pretrained(folder)
    for name in CHECKPOINT_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, folder / name)
    del model
    return folder


def long_dataset(workspace: Path, history_answers: int = 70) -> Path:
    """Samples of ~5.8 k tokens: a long history of earlier answers, then the current screenshot and the answer."""
    from demo import ensure_demo_data
    from lora_core.data.agent import format_answer

    demo = ensure_demo_data(workspace)
    answers = [format_answer(step.thinking, dict(step.action, **({"coordinate": list(step.target.center)}
                                                                 if step.target else {})))
               for trajectory in demo.trajectories for step in trajectory.steps]
    lines = []
    for index, trajectory in enumerate(demo.trajectories[:4]):
        for number, step in enumerate(trajectory.steps[:2]):
            history = [answers[(index * 7 + number + k) % len(answers)] for k in range(history_answers)]
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


def scenario_config(model: Path, steps: int, batch: int = 1, budget: int | None = None, checkpointing="auto",
                    compile_blocks="auto", vision_cache="auto", activation_budget=None, lora_dtype="fp32"):
    from lora_core.training.config import LLM_TARGETS, RunConfig

    config = RunConfig()
    config.model = str(model)
    config.lora.r, config.lora.alpha, config.lora.dropout = 16, 32, 0.05
    config.lora.target_modules = list(LLM_TARGETS)
    sft = config.sft
    sft.max_steps, sft.learning_rate, sft.logging_steps, sft.warmup_steps = steps, 1e-4, LOG_EVERY, 0
    sft.per_device_train_batch_size, sft.gradient_accumulation_steps = batch, 1
    sft.eval_strategy, sft.save_strategy, sft.load_best_model_at_end = "no", "no", False
    sft.max_length = 6200
    sft.num_train_epochs = 1000  # max_steps decides
    config.training.max_dim = 1024
    config.training.gradient_checkpointing = checkpointing
    config.training.compile = compile_blocks
    config.training.vision_cache = vision_cache
    config.training.activation_memory_budget = activation_budget
    config.training.lora_dtype = lora_dtype
    config.training.memory_budget_gib = MEMORY_GOAL_GIB
    config.training.max_tokens_per_batch = budget
    config.data.val_fraction = 0.0
    config.evaluation.after_training = False
    return config


def write_plain_input(config, workspace: Path, data: Path | None, out: Path) -> dict:
    """The scenario's samples, encoded by our encoder, in the plain recipe's input form; returns counts."""
    from lora_core.training.data import prepare_data, run_encoder

    encoder = run_encoder(config, Path(config.model))
    items = prepare_data(config, workspace, data, encoder).train
    settings = encoder.settings
    lines, tokens, image_tokens = [], 0, 0
    for item in items:
        images = [{"path": str(Path(path).resolve()), "pre_width": geom.pre_width, "pre_height": geom.pre_height,
                   "min_pixels": settings.min_pixels, "max_pixels": settings.max_pixels}
                  for path, geom in zip(item.sample.images, item.geometries)]
        lines.append(json.dumps({"input_ids": item.input_ids, "labels": item.labels, "images": images}))
        tokens += len(item.input_ids)
        image_tokens += sum(1 for token in item.input_ids if token == encoder.special.image_pad)
    out.write_text("\n".join(lines) + "\n")
    return {"samples": len(items), "mean_tokens": round(tokens / len(items)), "image_share": image_tokens / tokens}


def parameter_counts(model: Path) -> tuple[int, int]:
    """(LLM parameters without embeddings and lm_head, vision tower parameters), from the config on meta."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(str(model)))
    llm = sum(p.numel() for n, p in model.named_parameters() if ".language_model.layers." in n)
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n)
    return llm, vision


def mfu(tokens_per_s: float | None, image_share: float, counts: tuple[int, int]) -> float | None:
    if not tokens_per_s:
        return None
    llm, vision = counts
    flops = 6 * (llm * tokens_per_s + vision * 4 * image_share * tokens_per_s)
    return flops / H200_BF16_FLOPS


def run_ours(workspace: Path, name: str, config, data: Path | None, profile: bool) -> dict:
    from lora_core.training.config import dump_yaml
    from lora_core.training.run_folder import RunFolder

    folder = workspace / "runs" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_yaml(config))
    command = [sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"), "--workspace",
               str(workspace)] + (["--data", str(data)] if data else [])
    env = {**os.environ, "LORA_RUN_LOG_ATTACHED": "1", "PYTHONPATH": str(ROOT)}
    if profile:
        env["LORA_PROFILE_AT"] = str(PROFILE_AT)
    started = time.time()
    with open(folder / "train.log", "ab") as log:
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    run = RunFolder(folder)
    status = run.read_status()
    logs = [m for m in run.read_metrics() if m.get("kind") == "train"]
    result = {"exit": code, "state": status.get("state"), "wall_s": round(time.time() - started, 1),
              "peak_gib": status.get("peak_gpu_memory_gib"), "reserved_gib": status.get("peak_gpu_reserved_gib"),
              "checkpointing": status.get("gradient_checkpointing"), "precision": status.get("precision"),
              "compile": status.get("compile_stats"), "vision_cache": status.get("vision_cache")}
    warm = [m for m in logs if m["step"] >= WARMUP_STEPS]
    watched = range(PROFILE_AT, PROFILE_AT + 3) if profile else range(0)
    # gaps between logs, leaving out the one holding the profiled steps (the profiler slows what it watches)
    gaps = [(start, end) for start, end in zip(warm, warm[1:])
            if not any(start["step"] < step + 1 <= end["step"] for step in watched)]
    if gaps:
        seconds = sum(end["time"] - start["time"] for start, end in gaps)
        steps = sum(end["step"] - start["step"] for start, end in gaps)
        tokens = sum(end["num_input_tokens_seen"] - start["num_input_tokens_seen"] for start, end in gaps)
        result.update(step_s=round(statistics.median((end["time"] - start["time"]) / (end["step"] - start["step"])
                                                     for start, end in gaps), 4),
                      tokens_per_s=round(tokens / seconds, 1), tokens_per_step=round(tokens / steps, 1),
                      measured_steps=steps)
    if (folder / "profile.json").exists():
        result["profile"] = json.loads((folder / "profile.json").read_text())
    result["log_tail"] = run.log_tail(20 if code != 0 or status.get("state") != "finished" else 6)
    return result


def checkpointing_taken(result: dict) -> str:
    """What checkpointing auto chose, for the settings column."""
    choice = result.get("checkpointing") or {}
    if choice.get("setting") != "auto":
        return ""
    kept = f", compiled blocks keep {choice['activation_budget']:.0%}" if choice.get("activation_budget") else ""
    if not choice.get("on"):
        return f" → off{kept}"
    return (f" → first {choice['layers']} layers" if choice.get("layers") is not None else " → every layer") + kept


def run_plain(plain: Path, model: Path, encoded: Path, batches: list[int], steps: int) -> list[dict]:
    command = [sys.executable, str(plain), str(model), str(encoded), "--batch", *map(str, batches),
               "--steps", str(steps), "--profile"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    rows = []
    for line in done.stdout.splitlines():
        try:  # the recipe prints one JSON object per batch; libraries may print dicts of their own
            row = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and ("batch" in row or "error" in row):
            rows.append(row)
    if done.returncode != 0 or not rows:
        rows.append({"scenario": f"plain-{encoded.stem}", "error": done.stderr[-1500:]})
    return rows


def figure(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    lines = ["| scenario | trainer | settings | step s | tokens/s | peak GiB | GPU busy | kernels' union "
             "| kernels / steps | MFU |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        profile = r.get("profile") or {}
        busy = profile.get("gpu_busy")
        # the profiler slows a host-bound step (the window's wall time grows): kernel time alone over the
        # unprofiled steps' time tells how busy the GPU is when nobody watches
        kernels = profile.get("kernels_only_s")
        unwatched = (kernels / (3 * r["step_s"])) if kernels and r.get("step_s") else None
        union = (profile.get("gpu_idle") or {}).get("busy_share")  # some kernel running, over the window
        lines.append(f"| {r['scenario']} | {r['trainer']} | {r['settings']} | {r.get('step_s', '—')} | "
                     f"{figure(r.get('tokens_per_s'), ',.0f')} | {figure(r.get('peak_gib'), '.1f')} | "
                     f"{'—' if busy is None else format(busy, '.0%')} | {figure(union, '.0%')} | "
                     f"{'—' if unwatched is None else format(unwatched, '.0%')} | "
                     f"{format(r['mfu'], '.1%') if r.get('mfu') else '—'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=Path, help="plain_recipe.py (default: ../shared/bench/plain_recipe.py)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/out/train_gpu")))
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/bench-train-gpu"))
    parser.add_argument("--tiny", action="store_true", help="dry run with the embedded tiny model on the CPU")
    parser.add_argument("--only", choices=("ours", "plain"), help="run one side only")
    parser.add_argument("--rows", nargs="*", type=int, default=list(GOAL_ROWS),
                        help=f"indices into OUR_ROWS, run in this order (default: the goal rows {GOAL_ROWS})")
    parser.add_argument("--plain-batch", nargs="*", help="SCENARIO=B1,B2 to replace PLAIN_BATCHES' entries; "
                                                         "a scenario left out is not run")
    parser.add_argument("--no-profile", action="store_true", help="no profiled window in our runs (the "
                                                                  "profiler slows the steps it watches)")
    args = parser.parse_args()
    import torch

    from lora_core.qwen.checkpoint import ensure_embedded_checkpoint

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    print(f"machine: {machine()}; GPU: {torch.cuda.get_device_name(0) if cuda else 'none'}; torch "
          f"{torch.__version__}", flush=True)
    embedded = ensure_embedded_checkpoint(args.workspace)
    started = time.time()
    model = embedded if args.tiny else build_random_2b(args.workspace / "models" / "qwen3vl-2b-random", embedded)
    print(f"model ready in {time.time() - started:.0f} s: {model}", flush=True)
    counts = parameter_counts(model)
    data = {"demo": None, "long": long_dataset(args.workspace)}
    inputs, shapes = {}, {}
    for scenario, path in data.items():
        inputs[scenario] = args.workspace / f"{scenario}.jsonl"
        shapes[scenario] = write_plain_input(scenario_config(model, args.steps), args.workspace, path,
                                             inputs[scenario])
        print(f"{scenario}: {shapes[scenario]}", flush=True)
    rows = []

    def record(row):
        row["mfu"] = mfu(row.get("tokens_per_s"), shapes[row["scenario"]]["image_share"], counts)
        rows.append(row)
        print(json.dumps(row), flush=True)
        (args.out / "train_gpu.json").write_text(json.dumps({"machine": machine(), "parameters": counts,
                                                             "shapes": shapes, "rows": rows}, indent=1))

    if args.only != "plain":
        for index in args.rows:  # in the order asked
            scenario, label, *settings = OUR_ROWS[index]
            config = scenario_config(model, args.steps, *settings)
            result = run_ours(args.workspace, f"ours-{scenario}-{index}", config, data[scenario],
                              profile=cuda and args.steps > 13 and not args.no_profile)
            record({**result, "scenario": scenario, "trainer": "ours",
                    "settings": f"{label}{checkpointing_taken(result)}, accumulation 1"})
    if args.only != "ours" and cuda:
        plain = args.plain or ROOT.parent / "shared" / "bench" / "plain_recipe.py"
        plain_batches = PLAIN_BATCHES
        if args.plain_batch:
            plain_batches = {k: [int(b) for b in v.split(",")] for k, v in (a.split("=") for a in args.plain_batch)}
        for scenario, batches in plain_batches.items():
            for result in run_plain(plain, model, inputs[scenario], batches, args.steps):
                batch = result.get("batch")
                record({**result, "scenario": scenario, "trainer": "plain",
                        "settings": f"batch {batch}, padded, ckpt on"})
    print("\n" + table(rows), flush=True)
    (args.out / "train_gpu.md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
