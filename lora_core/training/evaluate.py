"""Evaluation of a run: generate an answer for every validation sample, parse it, score it.

Metrics (eval.json): format-valid rate, action-type accuracy, click hit rate (inside the target box when
the sample knows it, else within a radius), mean coordinate error in original-screenshot pixels, and the
validation eval loss. Every answer is kept in predictions.jsonl.

On demand: `python -m lora_core.evaluate --run runs/<id> [--max-dim N]` (other image settings than the run
trained with are allowed, and flagged: seed §4.4).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lora_core.data.agent import parse_answer
from lora_core.data.coords import OriginalFrame, to_original
from lora_core.training.run_folder import RunFolder, write_json_atomic

POINTED_ACTIONS = ("click", "long_press")


@dataclass
class Truth:
    action: dict | None  # the reference action (arguments), in the sample's coordinate space
    kind: str | None
    point_px: tuple[float, float] | None  # the reference point in original pixels
    box: list[float] | None  # target element box in original pixels, when known
    screen_size: tuple[int, int] | None  # None: a text-only sample whose metadata names no screen
    space: str


@dataclass
class EvalResult:
    rows: list[dict]
    metrics: dict
    partial: bool = False
    seconds: float = 0.0


def reference_answer(messages: list[dict]) -> str:
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    return "".join(item.get("text", "") for item in content or [] if item.get("type") == "text")


def answer_frame(sample, geometries):
    """What the answer's points refer to: the current (last) screenshot's geometry; for a sample without
    images the screen its metadata names (enough for every space but abs-resized), else None."""
    if geometries:
        return geometries[-1]
    size = (sample.metadata or {}).get("screen_size")
    if isinstance(size, (list, tuple)) and len(size) >= 2:
        try:
            return OriginalFrame(int(size[0]), int(size[1]))
        except (TypeError, ValueError):
            return None
    return None


def ground_truth(sample, geom, default_space: str) -> Truth:
    """The reference action and point of a sample's final answer (metadata first, else the answer itself).

    `geom`: the frame the answer's points refer to (answer_frame); None when there is none."""
    metadata = sample.metadata or {}
    space = metadata.get("coordinate_space") or default_space
    parsed = parse_answer(reference_answer(sample.messages))
    action = parsed.action
    action_abs = metadata.get("action_abs") if isinstance(metadata.get("action_abs"), dict) else None
    kind = (action or action_abs or {}).get("action")
    point = None
    if action_abs and isinstance(action_abs.get("coordinate"), (list, tuple)):
        point = tuple(float(v) for v in action_abs["coordinate"][:2])
    elif action and isinstance(action.get("coordinate"), (list, tuple)) and geom is not None:
        try:
            point = to_original(*action["coordinate"][:2], space, geom)
        except (ValueError, TypeError):
            point = None
    box = metadata.get("target_box")
    size = metadata.get("screen_size") or ([geom.width, geom.height] if geom is not None else None)
    return Truth(action, kind, point, list(box) if box else None,
                 (int(size[0]), int(size[1])) if size else None, space)


def predicted_point(action: dict | None, space: str, geom) -> tuple[tuple[float, float] | None, str | None]:
    """The predicted coordinate in original pixels, or a note on why there is none."""
    if not action or not isinstance(action.get("coordinate"), (list, tuple)):
        return None, None
    if geom is None:
        return None, "no screenshot to place the predicted point on"
    try:
        return to_original(*action["coordinate"][:2], space, geom), None
    except (ValueError, TypeError) as error:
        return None, str(error)


def score(output: str, truth: Truth, geom, click_radius: float) -> dict:
    """One validation answer against its reference."""
    parsed = parse_answer(output)
    row = {"output": output, "valid": parsed.valid, "problems": parsed.problems, "pred_action": parsed.action,
           "truth_action": truth.action, "truth_point": list(truth.point_px) if truth.point_px else None,
           "target_box": truth.box, "screen_size": list(truth.screen_size) if truth.screen_size else None}
    pred_kind = (parsed.action or {}).get("action")
    row["action_match"] = bool(parsed.valid and pred_kind == truth.kind)
    point, note = predicted_point(parsed.action, truth.space, geom)
    row["pred_point"] = list(point) if point else None
    if note:
        row["problems"] = row["problems"] + [note]
    if truth.kind in POINTED_ACTIONS and truth.point_px is not None and (truth.box or truth.screen_size):
        if point is None:
            row["hit"], row["error_px"] = False, None
        else:
            row["error_px"] = math.dist(point, truth.point_px)
            if truth.box:
                x0, y0, x1, y1 = truth.box
                row["hit"] = x0 <= point[0] <= x1 and y0 <= point[1] <= y1
                row["hit_rule"] = "inside target box"
            else:
                radius = click_radius * min(truth.screen_size)
                row["hit"] = row["error_px"] <= radius
                row["hit_rule"] = f"within {radius:.0f} px"
    return row


def summarize(rows: list[dict], eval_loss: float | None) -> dict:
    count = len(rows)
    clicks = [r for r in rows if "hit" in r]
    errors = [r["error_px"] for r in clicks if r.get("error_px") is not None]

    def rate(values):
        return sum(values) / len(values) if values else None

    return {
        "samples": count,
        "format_valid_rate": rate([r["valid"] for r in rows]),
        "action_type_accuracy": rate([r["action_match"] for r in rows]),
        "click_samples": len(clicks),
        "click_hit_rate": rate([r["hit"] for r in clicks]),
        "mean_coordinate_error_px": sum(errors) / len(errors) if errors else None,
        "coordinate_error_samples": len(errors),
        "eval_loss": eval_loss,
    }


def decode_answer(encoder, new_ids) -> str:
    """The generated answer up to the end of the turn (<|im_end|>, <|endoftext|> or padding)."""
    special = encoder.special
    ends = {special.im_end, special.endoftext, special.pad}
    cut = next((index for index, token in enumerate(new_ids) if token in ends), len(new_ids))
    return encoder.tokenizer.decode(list(new_ids[:cut]), skip_special_tokens=False).strip()


def prompt_item(item, encoder):
    """The validation sample without its final answer, rendered with the generation prompt."""
    from dataclasses import replace

    from lora_core.qwen.chat import IGNORE_INDEX

    prompt = replace(item.sample, messages=item.sample.messages[:-1])
    ids, geometries = encoder.prompt_ids(prompt)
    return replace(item, sample=prompt, input_ids=ids, labels=[IGNORE_INDEX] * len(ids), geometries=geometries)


def loss_of(model, items, pixel_cache) -> float | None:
    """Mean per-sample loss on the validation items: training's loss (trained positions only), batch size 1
    as the Trainer's eval_loss is computed."""
    import torch

    from lora_core.training.collate import batch_for, takes_token_types, trained_positions
    from lora_core.training.trainer import next_token_loss

    losses = []
    device = next(model.parameters()).device
    token_types = takes_token_types(model)
    with torch.no_grad():
        for item in items:
            batch = {k: v.to(device) for k, v in batch_for([item], pixel_cache, token_types=token_types).items()}
            labels = batch.pop("labels")
            keep = trained_positions(labels.cpu()).to(device)
            logits = model(**batch, logits_to_keep=keep).logits
            losses.append(float(next_token_loss(logits, labels, keep)))
    return sum(losses) / len(losses) if losses else None


def generate_answers(model, prompts, pixel_cache, encoder, max_new_tokens: int) -> list[str]:
    """Greedy answers for one left-padded batch of prompts (items rendered with the generation prompt)."""
    import torch

    from lora_core.training.collate import batch_for, takes_token_types

    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch_for(prompts, pixel_cache, with_labels=False,
                                                   token_types=takes_token_types(model), left_padded=True).items()}
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                pad_token_id=encoder.special.pad)
    width = batch["input_ids"].shape[1]
    return [decode_answer(encoder, row[width:].tolist()) for row in output.cpu()]


def evaluate_items(model, items, pixel_cache, encoder, info, config, stop_check=lambda: False,
                   eval_loss: float | None = None) -> EvalResult:
    """Generate on the validation items (greedy, per_device_eval_batch_size at a time) and score each;
    eval_loss is computed when not given."""
    started = time.time()
    model.eval()
    if eval_loss is None:
        eval_loss = loss_of(model, items, pixel_cache)
    limit = config.evaluation.max_samples or len(items)
    chosen = [item for item in items[:limit] if item.sample.messages[-1].get("role") == "assistant"]
    batch_size = max(1, config.sft.per_device_eval_batch_size)
    rows, partial = [], False
    for start in range(0, len(chosen), batch_size):
        if stop_check():
            partial = True
            break
        chunk = chosen[start:start + batch_size]
        prompts = [prompt_item(item, encoder) for item in chunk]
        texts = generate_answers(model, prompts, pixel_cache, encoder, config.evaluation.max_new_tokens)
        for item, prompt, text in zip(chunk, prompts, texts):
            geom = answer_frame(item.sample, prompt.geometries)  # the current screenshot: the sample's last image
            truth = ground_truth(item.sample, geom, config.data.coordinate_space)
            row = {"id": item.sample.id, "source": item.sample.source, "image": str(item.sample.images[-1])
                   if item.sample.images else None, "prompt_tokens": len(prompt.input_ids)}
            row.update(score(text, truth, geom, config.evaluation.click_radius))
            rows.append(row)
    return EvalResult(rows, summarize(rows, eval_loss), partial, time.time() - started)


def write_evaluation(folder: RunFolder, result: EvalResult, settings, trained_settings, extra: dict | None = None):
    import json

    with folder.predictions_path.open("w", encoding="utf-8") as handle:
        for row in result.rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_json_atomic(folder.eval_path, {
        "state": "done", "metrics": result.metrics, "partial": result.partial, "seconds": round(result.seconds, 2),
        "image_settings": settings.as_dict(), "trained_image_settings": trained_settings.as_dict(),
        "finished_at": time.time(), **(extra or {})})


# ----------------------------------------------------------------- on demand, in its own process


def evaluate_run(run_folder: Path, workspace: Path | None, max_dim: int | None, max_samples: int | None) -> dict:
    """Rebuild the run's validation split, load base model + adapter, generate and score."""
    import torch
    from peft import PeftModel

    from lora_core.qwen.checkpoint import read_model_info, resolve_model_path
    from lora_core.training.collate import PixelCache
    from lora_core.training.trainer import load_base_model
    from lora_core.training.data import prepare_data, run_encoder
    from lora_core.training.run_folder import default_workspace

    folder = RunFolder(run_folder)
    config = folder.load_config()
    status = folder.read_status()
    workspace = Path(workspace) if workspace else default_workspace(folder.config_path)
    model_path = Path(status["model"]) if status.get("model") else resolve_model_path(config.model, workspace)
    info = read_model_info(model_path)
    trained_encoder = run_encoder(config, model_path)
    encoder = trained_encoder.with_options(max_dim=max_dim) if max_dim else trained_encoder
    trained, settings = trained_encoder.settings, encoder.settings
    if max_samples:
        config.evaluation.max_samples = max_samples
    data_path = Path(status["data"]) if status.get("data") else None
    data = prepare_data(config, workspace, data_path, encoder)
    if not data.val:
        raise ValueError("This run has no validation samples (fewer than two trajectories); nothing to evaluate.")
    cuda = torch.cuda.is_available()
    model = load_base_model(model_path, config, cuda)  # as trained: 4-bit for a QLoRA run
    if cuda and not config.training.use_4bit:
        model = model.to("cuda")
    model = PeftModel.from_pretrained(model, str(folder.adapter_path))
    pixel_cache = PixelCache(encoder)
    result = evaluate_items(model, data.val, pixel_cache, encoder, info, config,
                            stop_check=folder.stop_requested)
    write_evaluation(folder, result, settings, trained, {"on_demand": True})
    return result.metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lora_core.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the run folder (runs/<id>)")
    parser.add_argument("--workspace", type=Path, help="where the embedded model and demo data live")
    parser.add_argument("--max-dim", type=int, help="evaluate at another max_dim than the run trained with")
    parser.add_argument("--max-samples", type=int, help="generate on at most this many validation samples")
    args = parser.parse_args(argv)
    folder = RunFolder(args.run)
    if not folder.config_path.is_file():
        print(f"error: {args.run} is not a run folder (no config.yaml)", file=sys.stderr)
        return 2
    if folder.try_evaluation_lock() is None:  # held (open) until this process ends: one evaluation per run
        print(f"error: {args.run} is already being evaluated; wait for that evaluation to finish.", file=sys.stderr)
        return 3
    previous = folder.read_eval() or {}
    write_json_atomic(folder.eval_path, {**previous, "state": "running", "pid": os.getpid(),
                                         "started_at": time.time()})
    try:
        metrics = evaluate_run(args.run, args.workspace, args.max_dim, args.max_samples)
    except Exception as error:  # recorded for the UI
        import traceback

        traceback.print_exc()
        write_json_atomic(folder.eval_path, {**previous, "state": "failed", "message": f"{error}"})
        print(f"EVALUATION FAILED: {error}", file=sys.stderr)
        return 1
    print(f"evaluation: {metrics}", flush=True)
    return 0



# ----------------------------------------------------------------- the comparison gallery

TRUTH_COLOR = (22, 160, 60)


def draw_predictions(screenshot_path: Path, truth_row: dict, predictions: list[tuple[str, tuple, dict | None]],
                     height: int = 720):
    """The screenshot with the reference (green box / cross) and each run's predicted point (a numbered ring).

    predictions: (label, RGB colour, that run's prediction row or None).
    """
    from PIL import Image, ImageDraw, ImageFont

    from lora_core.data.images import open_screenshot

    image = open_screenshot(Path(screenshot_path), max_aspect=None)
    scale = height / image.height
    view = image.resize((max(1, round(image.width * scale)), height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(view)
    font = ImageFont.load_default(size=max(12, height // 40))
    box = truth_row.get("target_box")
    if box:
        draw.rectangle([v * scale for v in box], outline=TRUTH_COLOR, width=3)
    point = truth_row.get("truth_point")
    if point:
        x, y = point[0] * scale, point[1] * scale
        arm = max(8, height // 60)
        draw.line([x - arm, y, x + arm, y], fill=TRUTH_COLOR, width=3)
        draw.line([x, y - arm, x, y + arm], fill=TRUTH_COLOR, width=3)
    radius = max(7, height // 70)
    for number, (label, color, row) in enumerate(predictions, start=1):
        if not row or not row.get("pred_point"):
            continue
        x, y = row["pred_point"][0] * scale, row["pred_point"][1] * scale
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=color, width=3)
        draw.text((x + radius + 2, y - radius - 2), str(number), fill=color, font=font)
    return view


if __name__ == "__main__":
    raise SystemExit(main())
