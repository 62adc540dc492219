"""Try a run's adapter (or its base model) on one screenshot: the prompt built as training builds it, a greedy
answer, parsed, with its points in the screenshot's own pixels.

`python -m lora_core predict --run RUN_ID --image PATH --task TEXT [--history FILE.json]
[--checkpoint best|last|base|N] [--workspace DIR] --json`

History FILE.json: a list of earlier steps, oldest first. Each step is either `{"answer": "<thinking>…"}`
(the model's text as it was) or `{"thinking": "…", "action": {…}}` with points in the run's coordinate space
(as the model writes them) or `{"thinking": "…", "action_abs": {…}}` with points in the screenshot's pixels;
`"image"` (optional) is that step's screenshot, relative to the history file. Only the last
`max_images_per_sample - 1` history screenshots are kept, as in training.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lora_core.data.agent import format_answer, map_points, parse_answer, POINT_KEYS
from lora_core.data.coords import as_int_point, from_original, to_original
from lora_core.data.images import ImageInputError, open_screenshot, safe_resolve
from lora_core.data.json_input import JsonInputError, loads, read_text
from lora_core.data.slicing import CURRENT_SCREENSHOT_TEXT, DEFAULT_SYSTEM_PROMPT
from lora_core.training.run_folder import RunFolder

MAX_HISTORY_STEPS = 50
BASE = "base"


class PredictError(ValueError):
    """Bad input for a prediction; the message is one sentence saying what to fix."""


@dataclass
class HistoryStep:
    answer: str | None = None  # the answer text as the model wrote it
    thinking: str = ""
    action: dict | None = None  # in the run's coordinate space
    action_abs: dict | None = None  # in the screenshot's pixels
    image: Path | None = None


@dataclass
class PredictRequest:
    image: Path
    task: str
    run_id: str | None = None
    checkpoint: str = "best"  # best | last | base | N
    history: list[HistoryStep] = field(default_factory=list)
    workspace: Path = Path("workspace")
    model: str | None = None  # without a run: this base model at its own image settings
    max_dim: int | None = None  # another max_dim than the run trained with (flagged, seed §4.4)
    max_new_tokens: int | None = None
    system_prompt: str | None = None


# ----------------------------------------------------------------- input checks


def run_folder(workspace: Path, run: str) -> RunFolder:
    """The run folder for a run id (or a path to a run folder inside the workspace's runs/)."""
    from lora_core.training.registry import RUN_ID_PATTERN

    runs = (Path(workspace) / "runs").resolve()
    text = str(run or "").strip()
    if RUN_ID_PATTERN.match(text) and text not in (".", ".."):
        path = runs / text
    else:
        path = Path(text).expanduser().resolve()
        if path.parent != runs:
            raise PredictError(f"--run {text!r} escapes the workspace's runs folder ({Path(workspace).name}/runs); "
                               "give a run id.")
    if not (path / "config.yaml").is_file():
        raise PredictError(f"There is no run {path.name!r} in {Path(workspace).name}/runs.")
    return RunFolder(path)


def checkpoint_folders(folder: RunFolder) -> dict[int, Path]:
    found = {}
    for path in folder.path.glob("checkpoint-*"):
        number = path.name.removeprefix("checkpoint-")
        if number.isdigit() and (path / "adapter_config.json").is_file():
            found[int(number)] = path
    return dict(sorted(found.items()))


def choose_adapter(folder: RunFolder, checkpoint: str) -> tuple[Path | None, str]:
    """(adapter folder or None for the base model, a label saying which one)."""
    choice = str(checkpoint or "best").strip().lower()
    if choice == BASE:
        return None, "base model (no adapter)"
    saved = checkpoint_folders(folder)
    final = folder.adapter_path if (folder.adapter_path / "adapter_config.json").is_file() else None
    if choice == "best":
        best = folder.read_status().get("best_checkpoint")
        if best and (folder.path / best / "adapter_config.json").is_file():
            return folder.path / best, f"best ({best}, lowest eval loss)"
        if final is not None:
            return final, "last (adapter/: no best checkpoint was recorded)"
        choice = "last"
    if choice == "last":
        if final is not None:
            return final, "last (adapter/, saved at the end)"
        if saved:
            number = max(saved)
            return saved[number], f"last (checkpoint-{number})"
        raise PredictError(f"{folder.run_id} has no adapter yet (it saved no checkpoint); wait for a save or "
                           "use --checkpoint base.")
    if choice.isdigit():
        if int(choice) in saved:
            return saved[int(choice)], f"checkpoint-{int(choice)}"
        kept = ", ".join(map(str, saved)) or "none"
        raise PredictError(f"{folder.run_id} has no checkpoint-{int(choice)} (kept: {kept}).")
    raise PredictError(f"--checkpoint {checkpoint!r} is not best, last, base or a step number.")


def parse_checkpoint(text: str) -> str:
    choice = str(text).strip().lower()
    if choice in ("best", "last", BASE) or choice.isdigit():
        return choice
    raise PredictError(f"--checkpoint {text!r} is not best, last, base or a step number.")


def read_history(path: Path) -> list[HistoryStep]:
    """A history file (a JSON list of steps); its screenshots must lie in its own folder."""
    path = Path(path)
    try:
        data = loads(read_text(path, "a .json history file", inside=path.parent), path.name)
    except JsonInputError as error:
        raise PredictError(str(error)) from None
    return history_steps(data, path.parent, path.name)


def history_steps(data, base: Path | None, name: str = "the history") -> list[HistoryStep]:
    """Steps from parsed JSON; `base`: the folder step images are relative to (None: no images allowed)."""
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        data = data["steps"]
    if not isinstance(data, list):
        raise PredictError(f"{name} must be a JSON list of steps, each with an answer or thinking and action.")
    if len(data) > MAX_HISTORY_STEPS:
        raise PredictError(f"{name} has {len(data)} steps; at most {MAX_HISTORY_STEPS} are read.")
    steps = []
    for number, item in enumerate(data, start=1):
        where = f"{name}, step {number}"
        if not isinstance(item, dict):
            raise PredictError(f"{where} must be an object with an answer, or thinking and action.")
        step = HistoryStep(thinking=str(item.get("thinking") or ""))
        if isinstance(item.get("answer"), str) and item["answer"].strip():
            step.answer = item["answer"].strip()
        elif isinstance(item.get("action"), dict):
            step.action = item["action"]
        elif isinstance(item.get("action_abs"), dict):
            step.action_abs = item["action_abs"]
        else:
            raise PredictError(f"{where} has no answer text and no action object.")
        if item.get("image") is not None:
            if base is None:
                raise PredictError(f"{where} names an image, which this history may not hold.")
            try:
                step.image = safe_resolve(base, item["image"])
            except ImageInputError as error:
                raise PredictError(f"{where}: {error}") from None
            if not step.image.is_file():
                raise PredictError(f"{where}: the image {item['image']!r} does not exist.")
        steps.append(step)
    return steps


def checked_screenshot(path: Path, what: str = "The screenshot"):
    """The decoded screenshot, or a PredictError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{what} {path.name!r} does not exist.")
    try:
        return open_screenshot(path)
    except ImageInputError as error:
        raise PredictError(str(error)) from None


# ----------------------------------------------------------------- the prompt, as training builds it


def step_answer(step: HistoryStep, space: str, encoder, size: tuple[int, int]) -> str:
    if step.answer is not None:
        return step.answer
    if step.action is not None:
        return format_answer(step.thinking, step.action)
    geom = encoder.geometry(*size)

    def convert(x, y):
        return as_int_point(from_original(x, y, space, geom), space, geom)

    return format_answer(step.thinking, map_points(step.action_abs, convert))


def prompt_sample(request: PredictRequest, encoder, space: str, max_images: int, system_prompt: str):
    """System, task, history as assistant turns (their screenshots for the last max_images - 1 steps), the
    current screenshot: the sample slicing.sample_for_step makes for training, without its answer."""
    from lora_core.data.samples import Sample

    current = checked_screenshot(request.image)
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": request.task}]
    images = []
    first_image = len(request.history) - (max(1, max_images) - 1)
    for position, step in enumerate(request.history):
        size = current.size
        if step.image is not None and position >= first_image:
            size = checked_screenshot(step.image, "A history screenshot").size
            messages.append({"role": "user", "content": [{"type": "image", "image": str(step.image)}]})
            images.append(step.image)
        messages.append({"role": "assistant", "content": step_answer(step, space, encoder, size)})
    messages.append({"role": "user", "content": [{"type": "image", "image": str(request.image)},
                                                 {"type": "text", "text": CURRENT_SCREENSHOT_TEXT}]})
    images.append(Path(request.image))
    return Sample(messages, images, id="playground", where=Path(request.image).name)


def run_system_prompt(status: dict) -> str:
    """The system prompt the run trained with: its dataset's first one, else the demo trajectories' own."""
    data = status.get("data")
    if data and Path(data).is_file():
        try:
            from lora_core.data.datasets import read_dataset

            messages = read_dataset(Path(data)).sample(0).messages
            if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
                return messages[0]["content"]
        except Exception:  # an unreadable dataset: the default prompt, as the demo trains with
            pass
    return DEFAULT_SYSTEM_PROMPT


# ----------------------------------------------------------------- generation


def generation_inputs(encoder, sample, ids, geometries, token_types: bool) -> dict:
    """input_ids, attention mask, image token types and pixels (made by the encoder) for one prompt."""
    import torch

    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones((1, len(ids)), dtype=torch.long)}
    if token_types:
        batch["mm_token_type_ids"] = (batch["input_ids"] == encoder.special.image_pad).to(torch.int32)
    values, grids = [], []
    for path, geom in zip(sample.images, geometries):
        pixels, grid = encoder.pixels(open_screenshot(Path(path), max_aspect=None), geom)
        values.append(pixels)
        grids.append(grid)
    if values:
        batch["pixel_values"], batch["image_grid_thw"] = torch.cat(values), torch.cat(grids)
    return batch


def forward_takes_token_types(model) -> bool:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "mm_token_type_ids" in inspect.signature(base.forward).parameters


def action_points(action: dict | None, space: str, geom) -> dict:
    """Every point of the action in the screenshot's pixels, by key (a point that cannot be placed is left out)."""
    points = {}
    for key in POINT_KEYS:
        value = (action or {}).get(key)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            try:
                points[key] = [round(v, 2) for v in to_original(value[0], value[1], space, geom)]
            except (TypeError, ValueError):
                continue
    return points


def predict(request: PredictRequest) -> dict:
    """Generate one answer; the dict is what the CLI prints and the playground shows."""
    import torch

    from lora_core.analysis.curves import resolution_flag
    from lora_core.qwen.checkpoint import load_model, resolve_model_path
    from lora_core.training.evaluate import decode_answer
    from lora_core.training.schema import RunConfig

    started = time.time()
    if not (request.task or "").strip():
        raise PredictError("The task is empty; say what the agent should do.")
    workspace = Path(request.workspace)
    folder, status = None, {}
    if request.run_id:
        folder = run_folder(workspace, request.run_id)
        config = folder.load_config()
        status = folder.read_status()
        adapter, adapter_label = choose_adapter(folder, request.checkpoint)
    else:
        config = RunConfig()
        config.model = request.model or "embedded"
        config.training.max_dim = None
        adapter, adapter_label = None, "base model (no run)"
    recorded = status.get("model")
    model_path = Path(recorded) if recorded and Path(recorded).is_dir() else resolve_model_path(config.model,
                                                                                                workspace)
    from lora_core.training.data import run_encoder

    trained_encoder = run_encoder(config, model_path)
    encoder = trained_encoder.with_options(max_dim=request.max_dim) if request.max_dim else trained_encoder
    trained = status.get("image_settings") or trained_encoder.settings.as_dict()
    used = encoder.settings.as_dict()
    space = config.data.coordinate_space
    system = request.system_prompt or run_system_prompt(status)
    sample = prompt_sample(request, encoder, space, config.training.max_images_per_sample, system)
    try:
        ids, geometries = encoder.prompt_ids(sample)
    except ValueError as error:
        raise PredictError(str(error).splitlines()[0]) from None
    cuda = torch.cuda.is_available()
    from lora_core.training.schema import resolved_bf16

    model = load_model(model_path, dtype=torch.bfloat16 if resolved_bf16(config, cuda) else torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model = model.to("cuda" if cuda else "cpu").eval()
    batch = {k: v.to(model.device) for k, v in
             generation_inputs(encoder, sample, ids, geometries, forward_takes_token_types(model)).items()}
    max_new = request.max_new_tokens or config.evaluation.max_new_tokens
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=max_new, do_sample=False, use_cache=True,
                                pad_token_id=encoder.special.pad)
    text = decode_answer(encoder, output[0, len(ids):].tolist())
    parsed = parse_answer(text)
    geom = geometries[-1]
    points = action_points(parsed.action, space, geom)
    problems = list(parsed.problems)
    if parsed.action and isinstance(parsed.action.get("coordinate"), (list, tuple)) and "coordinate" not in points:
        problems.append("The predicted coordinate lies outside the screenshot.")
    flag = resolution_flag(trained, used)
    return {
        "run_id": folder.run_id if folder else None,
        "run_name": status.get("name"),
        "adapter": adapter_label,
        "adapter_path": str(adapter.relative_to(folder.path)) if adapter is not None else None,
        "model": "embedded" if (model_path / "EMBEDDED.json").exists() else str(config.model),
        "embedded_model": (model_path / "EMBEDDED.json").exists(),
        "image_settings": used,
        "trained_image_settings": trained,
        "image_settings_flag": flag,
        "coordinate_space": space,
        "screenshot": {"width": geom.width, "height": geom.height, "resized_width": geom.resized_width,
                       "resized_height": geom.resized_height, "visual_tokens": geom.visual_tokens},
        "prompt_tokens": len(ids),
        "history_steps": len(request.history),
        "raw_text": text,
        "thinking": parsed.thinking,
        "action": parsed.action,
        "point_abs_original": points.get("coordinate"),
        "points_abs_original": points,
        "valid": parsed.valid and not problems,
        "problems": problems,
        "max_new_tokens": max_new,
        "device": "cuda" if cuda else "cpu",
        "seconds": round(time.time() - started, 2),
    }


# ----------------------------------------------------------------- drawing


PREDICTION_COLOR = (214, 39, 40)


def draw_prediction(image_path: Path, result: dict, height: int = 720, color=PREDICTION_COLOR):
    """The screenshot with the predicted action: a ring for a click, an arrow for a swipe or drag."""
    import math

    from PIL import Image, ImageDraw

    image = open_screenshot(Path(image_path), max_aspect=None)
    scale = height / image.height
    view = image.resize((max(1, round(image.width * scale)), height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(view)
    action = result.get("action") or {}
    points = {k: (v[0] * scale, v[1] * scale) for k, v in (result.get("points_abs_original") or {}).items()}
    radius = max(8, height // 60)

    def arrow(start, end):
        draw.line([start, end], fill=color, width=4)
        angle = math.atan2(end[1] - start[1], end[0] - start[0])
        for turn in (2.6, -2.6):
            tip = (end[0] + radius * 1.6 * math.cos(angle + turn), end[1] + radius * 1.6 * math.sin(angle + turn))
            draw.line([end, tip], fill=color, width=4)

    kind = action.get("action")
    if kind == "drag" and "start_coordinate" in points and "end_coordinate" in points:
        arrow(points["start_coordinate"], points["end_coordinate"])
    elif kind == "swipe":
        start = points.get("coordinate", (view.width / 2, view.height / 2))
        length = 0.25 * min(view.size)
        offset = {"up": (0, -length), "down": (0, length), "left": (-length, 0), "right": (length, 0)}
        dx, dy = offset.get(action.get("direction"), (0, 0))
        arrow(start, (start[0] + dx, start[1] + dy))
    elif "coordinate" in points:
        x, y = points["coordinate"]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=color, width=4)
        draw.line([x - 2 * radius, y, x - radius, y], fill=color, width=3)
        draw.line([x + radius, y, x + 2 * radius, y], fill=color, width=3)
    return view


# ----------------------------------------------------------------- the command


def run_predict_command(args) -> dict:
    if not args.run and not args.model:
        raise PredictError("Give --run RUN_ID (or --model for a base model without a run).")
    history = read_history(args.history) if args.history else []
    checked_screenshot(args.image)  # before the model loads
    request = PredictRequest(image=Path(args.image), task=args.task, run_id=args.run,
                             checkpoint=parse_checkpoint(args.checkpoint), history=history,
                             workspace=args.workspace, model=args.model, max_dim=args.max_dim,
                             max_new_tokens=args.max_new_tokens, system_prompt=args.system)
    return predict(request)


def register(commands, add_image_options) -> None:
    from lora_core.cli_args import DEFAULT_WORKSPACE, positive_int

    parser = commands.add_parser("predict", help="a run's adapter (or its base model) on one screenshot: the "
                                                 "answer, parsed, with its point in the screenshot's pixels")
    parser.add_argument("--run", help="run id (a folder of WORKSPACE/runs)")
    parser.add_argument("--image", type=Path, required=True, help="the current screenshot")
    parser.add_argument("--task", required=True, help="the instruction")
    parser.add_argument("--history", type=Path, help="FILE.json: earlier steps (see the module's help)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, base or a step number N")
    parser.add_argument("--model", help="without --run: a base model (checkpoint folder, or embedded)")
    parser.add_argument("--max-dim", type=positive_int, help="another max_dim than the run's (flagged, seed §4.4)")
    parser.add_argument("--max-new-tokens", type=positive_int, help="default: the run's evaluation.max_new_tokens")
    parser.add_argument("--system", help="another system prompt than the run's")
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="default ./workspace")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.set_defaults(handler=run_predict_command)
