"""Import trajectories into the store: all or nothing, path-safe, coordinates converted to abs-original.

Sources (`--format auto` tells them apart by content):
- folder: screenshots plus a JSON list of trajectories
  `[{"id", "task", "app"?, "steps": [{"image", "thinking", "action": {MAI-UI arguments}, "target"?}]}]`
  or a JSONL with one step per line `{"trajectory", "task", "step"?, "image", "thinking", "action", "target"?}`.
  `target` is `{"box": [x0, y0, x1, y1], "label"}` (or `target_box`), in the same convention as the actions.
- mai-ui: the seed's / native multi-turn `messages` JSONL (our own mai-ui export included), or MAI-UI
  message lists (a JSON list of messages, screenshots as `image_url` items).
- llamafactory / swift: `{"messages": [...], "images": [...]}` records with `<image>` placeholders.

Image references must resolve inside the import folder. Anything malformed refuses the whole import,
naming the record; nothing is written until everything has been read and checked.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lora_core.data.agent import map_points, parse_answer
from lora_core.data.coords import parse_space, to_original
from lora_core.data.coords import OriginalFrame
from lora_core.data.images import ImageInputError, open_screenshot, safe_resolve
from lora_core.data.json_input import InvalidJson, JsonInputError, loads, read_text
from lora_core.data.samples import SampleFormatError, normalize_record
from lora_core.data.slicing import CURRENT_SCREENSHOT_TEXT

from authoring.export import OMITTED_SCREENSHOT_TEXT, resized_frame

IMPORT_FORMATS = ("auto", "folder", "mai-ui", "llamafactory", "swift")
IGNORED_FILES = {"dataset_info.json", "export.json", "manifest.json", "screens.json"}


class ImportRefused(ValueError):
    """The source is malformed; nothing was imported. The message names the record."""


@dataclass
class ImportOptions:
    fmt: str = "auto"
    coords: str = "abs-original"
    max_dim: int | None = None
    encoder: object | None = None  # abs-resized: the chosen model's encoder, whose resize the coordinates were taken on

    def __post_init__(self):
        if self.fmt not in IMPORT_FORMATS:
            raise ImportRefused(f"Unknown import format {self.fmt!r}; use one of: {', '.join(IMPORT_FORMATS)}.")
        try:
            parse_space(self.coords)
        except ValueError as error:
            raise ImportRefused(str(error)) from None

    def frame(self, width: int, height: int):
        """The screenshot as the coordinates' model saw it (abs-resized), else as it is."""
        frame_of = resized_frame(self.encoder, self.max_dim) or OriginalFrame
        return frame_of(width, height)


@dataclass
class PendingStep:
    origin: str  # names the record for error messages
    image: Path | None
    thinking: str
    action: dict  # source convention
    target_box: list | None = None  # source convention
    target_label: str = ""
    action_abs: dict | None = None  # exact abs-original action from native metadata
    target_abs: list | None = None
    # filled by resolve():
    width: int = 0
    height: int = 0


@dataclass
class PendingTrajectory:
    id: str
    task: str
    app: str = ""
    source: str = ""
    steps: list[PendingStep] = field(default_factory=list)


@dataclass
class PendingCorrection:
    trajectory: PendingTrajectory
    position: int
    wrong: PendingStep
    recovery: list[PendingStep] = field(default_factory=list)
    wrong_key: str = ""


# ---------------------------------------------------------------------------- reading files


def _read_json_records(path: Path, inside: Path) -> list[tuple[str, object]]:
    """(record name, parsed JSON) for each line of a JSONL, or the one document of a JSON file.

    Read by lora_core.data.json_input: size, UTF-8, nesting and links out of `inside` are refused in a sentence."""
    try:
        text = read_text(path, "a trajectories or samples file", inside=inside)
        if path.suffix != ".jsonl":
            return [(path.name, loads(text, path.name))]
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"{path.name} line {number}", loads(line, f"{path.name} line {number}")))
            except InvalidJson as error:
                raise ImportRefused(f"{path.name} line {number} is not valid JSON ({error.msg}, column {error.colno}); "
                                    "fix or remove that line.") from None
        return records
    except JsonInputError as error:
        raise ImportRefused(str(error)) from None


def _classify(document) -> str | None:
    if isinstance(document, dict):
        if isinstance(document.get("trajectories"), list):
            return "trajectories"
        if "messages" in document:
            return "images-records" if "images" in document else "message-records"
        if "action" in document and "image" in document:
            return "step-lines"
        return None
    if isinstance(document, list) and document and all(isinstance(item, dict) for item in document):
        first = document[0]
        if "steps" in first:
            return "trajectories"
        if "role" in first:
            return "message-list"
        if "messages" in first:
            return "images-records" if "images" in first else "message-records"
        if "action" in first and "image" in first:
            return "step-lines"
    return None


FORMAT_KINDS = {
    "folder": {"trajectories", "step-lines"},
    "mai-ui": {"message-records", "message-list"},
    "llamafactory": {"images-records", "message-records"},
    "swift": {"images-records", "message-records"},
}


def discover(source: Path, fmt: str) -> tuple[Path, list[tuple[str, str, object]], list[str]]:
    """The import folder and (kind, record name, record) triples; files that hold no records are listed apart."""
    source = Path(source)
    if not source.exists():
        raise ImportRefused(f"{source} does not exist.")
    if source.is_dir():
        base = source.resolve()
        files = sorted(p for p in source.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
    else:
        base = source.resolve().parent
        files = [source]
    found, ignored = [], []
    for path in files:
        if path.name in IGNORED_FILES and source.is_dir():
            ignored.append(path.name)
            continue
        records = _read_json_records(path, base if source.is_dir() else path.parent)
        kinds_in_file = set()
        for name, document in records:
            kind = _classify(document)
            if kind is None:
                if path.suffix == ".jsonl":
                    raise ImportRefused(f"{name} is neither a step ({{image, thinking, action}}) nor a sample "
                                        "({messages: [...]}); fix that line.")
                kinds_in_file.add(None)
                continue
            kinds_in_file.add(kind)
            if kind in ("trajectories", "images-records", "message-records", "step-lines") and isinstance(document, list):
                items = document
                if kind == "trajectories" and isinstance(document, dict):
                    items = document["trajectories"]
                for number, item in enumerate(items, start=1):
                    found.append((kind, f"{path.name} record {number}", item))
            elif kind == "trajectories":
                for number, item in enumerate(document["trajectories"], start=1):
                    found.append((kind, f"{path.name} record {number}", item))
            else:
                found.append((kind, name, document))
        if kinds_in_file == {None}:
            ignored.append(path.name)
    if fmt != "auto":
        found = [entry for entry in found if entry[0] in FORMAT_KINDS[fmt]]
    if not found:
        wanted = "trajectories, steps or samples" if fmt == "auto" else f"{fmt} records"
        raise ImportRefused(f"No {wanted} found in {source}; check --format and the file names.")
    return base, found, ignored


# ---------------------------------------------------------------------------- folder of steps


def _target_of(item: dict) -> tuple[list | None, str]:
    target = item.get("target")
    if isinstance(target, dict) and target.get("box") is not None:
        return target["box"], str(target.get("label", "") or "")
    if item.get("target_box") is not None:
        return item["target_box"], str(item.get("target_label", "") or "")
    return None, ""


def _image_of(base: Path, item: dict, origin: str) -> Path:
    reference = item.get("image")
    try:
        return safe_resolve(base, reference)
    except ImageInputError as error:
        raise ImportRefused(f"{origin}: {error}") from None


def _pending_step(base: Path, item, origin: str) -> PendingStep:
    if not isinstance(item, dict):
        raise ImportRefused(f"{origin} must be an object with image, thinking and action.")
    action = item.get("action")
    if not isinstance(action, dict):
        raise ImportRefused(f"{origin} has no 'action' object (MAI-UI arguments such as "
                            '{"action": "click", "coordinate": [x, y]}).')
    thinking = item.get("thinking", "")
    if not isinstance(thinking, str):
        raise ImportRefused(f"{origin}: 'thinking' must be text.")
    box, label = _target_of(item)
    return PendingStep(origin, _image_of(base, item, origin), thinking.strip(), dict(action), box, label)


def read_folder(base: Path, found) -> list[PendingTrajectory]:
    trajectories: list[PendingTrajectory] = []
    by_id: dict[str, PendingTrajectory] = {}
    lines = []
    for kind, origin, item in found:
        if kind == "trajectories":
            if not isinstance(item, dict) or not isinstance(item.get("steps"), list) or not item["steps"]:
                raise ImportRefused(f"{origin} needs a non-empty 'steps' list.")
            if not isinstance(item.get("task"), str) or not item["task"].strip():
                raise ImportRefused(f"{origin} needs a 'task' (the instruction).")
            trajectory = PendingTrajectory(str(item.get("id") or f"trajectory-{len(trajectories) + 1}"), item["task"].strip(),
                                           str(item.get("app", "") or ""), origin)
            for number, step in enumerate(item["steps"], start=1):
                trajectory.steps.append(_pending_step(base, step, f"{origin} ({trajectory.id}) step {number}"))
            trajectories.append(trajectory)
        elif kind == "step-lines":
            lines.append((origin, item))
    for origin, item in lines:
        trajectory_id = str(item.get("trajectory") or item.get("trajectory_id") or "")
        if not trajectory_id:
            raise ImportRefused(f"{origin} has no 'trajectory' id; give every step the id of its trajectory.")
        trajectory = by_id.get(trajectory_id)
        if trajectory is None:
            task = item.get("task")
            if not isinstance(task, str) or not task.strip():
                raise ImportRefused(f"{origin}: the first step of {trajectory_id} needs a 'task'.")
            trajectory = by_id[trajectory_id] = PendingTrajectory(trajectory_id, task.strip(), str(item.get("app", "") or ""), origin)
            trajectories.append(trajectory)
        step = _pending_step(base, item, origin)
        order = item.get("step", len(trajectory.steps))
        if not isinstance(order, int) or isinstance(order, bool):
            raise ImportRefused(f"{origin}: 'step' must be a whole number.")
        trajectory.steps.append((order, step))
    for trajectory in by_id.values():
        trajectory.steps = [step for _, step in sorted(trajectory.steps, key=lambda pair: pair[0])]
    return trajectories


# ---------------------------------------------------------------------------- message samples


@dataclass
class RawTurn:
    origin: str
    image: Path | None
    thinking: str
    action: dict
    wrong: bool

    @property
    def key(self) -> str:
        return json.dumps([self.thinking, self.action], sort_keys=True, ensure_ascii=False)


@dataclass
class RawRecord:
    origin: str
    system: str
    task: str
    turns: list[RawTurn]
    metadata: dict
    record_id: str = ""


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(item.get("text", "") for item in content if item.get("type") == "text")


def parse_sample(base: Path, record, origin: str) -> RawRecord | None:
    if isinstance(record, list):
        record = {"messages": record}
    try:
        sample = normalize_record(record, base, where=origin)
    except SampleFormatError as error:
        raise ImportRefused(str(error)) from None
    images = iter(sample.images)
    messages = sample.messages
    system = ""
    start = 0
    if messages and messages[0]["role"] == "system":
        system, start = _text_of(messages[0]["content"]), 1
    task_parts, turns = [], []
    pending_image, image_number, seen_answer = None, 0, False
    raw_refs = _raw_image_refs(record)
    for number, message in enumerate(messages[start:], start=start + 1):
        content = message["content"]
        if message["role"] in ("user", "tool"):
            items = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for item in items:
                if item["type"] == "image":
                    image_number += 1
                    path = next(images)
                    if path is None:
                        marker = raw_refs[image_number - 1] if image_number <= len(raw_refs) else "inline data"
                        raise ImportRefused(
                            f"{origin}, message {number}: image {image_number} is {marker!r}, inline data with no file "
                            "(MAI-UI strips screenshots from its message lists); replace it with the screenshot's "
                            "path relative to the file.")
                    pending_image = path
                elif not seen_answer:  # the instruction, before or after an <image> placeholder
                    text = item["text"].strip()
                    if text and text not in (CURRENT_SCREENSHOT_TEXT, OMITTED_SCREENSHOT_TEXT):
                        task_parts.append(text)
        elif message["role"] == "assistant":
            parsed = parse_answer(_text_of(content))
            if not parsed.valid:
                if parsed.action is None and "<tool_call>" not in _text_of(content):
                    raise ImportRefused(
                        f"{origin}, message {number}: the answer is free text, not a MAI-UI action (a general VQA "
                        "record like LLaMA-Factory's mllm_demo.json). Authoring imports GUI-agent trajectories only; "
                        "open the file in the Mask Inspector or run `python -m lora_core audit FILE` to inspect it.")
                raise ImportRefused(f"{origin}, message {number}: {' '.join(parsed.problems)} "
                                    "Fix the answer (MAI-UI's action space) or leave the record out.")
            turns.append(RawTurn(f"{origin}, message {number}", pending_image, parsed.thinking, parsed.action,
                                 message.get("loss") is False))
            pending_image, seen_answer = None, True
    if not turns:
        raise ImportRefused(f"{origin} has no assistant answer; a sample needs at least the target answer.")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return RawRecord(origin, system, "\n".join(task_parts), turns, metadata, str(record.get("id", "") or ""))


def _raw_image_refs(record: dict) -> list[str]:
    refs = []
    for message in record.get("messages", []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for item in content:
                if isinstance(item, dict) and item.get("type") in ("image", "image_url"):
                    url = item.get("image_url")
                    refs.append(url.get("url") if isinstance(url, dict) else (url or item.get("image")))
    return refs


def _correction_position(record: RawRecord) -> int | None:
    meta = record.metadata
    if meta.get("kind") == "correction" and isinstance(meta.get("step_index"), int):
        return meta["step_index"]
    wrong = [index for index, turn in enumerate(record.turns) if turn.wrong]
    return wrong[0] if wrong else None


def _step_from_turn(turn: RawTurn, image: Path | None) -> PendingStep:
    return PendingStep(turn.origin, image, turn.thinking, turn.action)


def _apply_target_metadata(step: PendingStep, meta: dict) -> None:
    """The native format's exact abs-original action and target box of a sample's final answer."""
    if isinstance(meta.get("action_abs"), dict):
        step.action_abs = meta["action_abs"]
    if isinstance(meta.get("target_box"), list):
        step.target_abs = meta["target_box"]
        step.target_label = str(meta.get("target_label", "") or "")


def read_samples(base: Path, found) -> tuple[list[PendingTrajectory], list[PendingCorrection]]:
    """Rebuild trajectories from sliced samples: group, chain answer prefixes, attach corrections."""
    records = []
    for kind, origin, item in found:
        records.append(parse_sample(base, item, origin))
    groups: dict[tuple, list[RawRecord]] = {}
    for record in records:
        key = (record.metadata.get("source"),) if record.metadata.get("source") else (record.system, record.task)
        groups.setdefault(key, []).append(record)
    trajectories, corrections = [], []
    for key, members in groups.items():
        main = [r for r in members if _correction_position(r) is None]
        fixes = [r for r in members if _correction_position(r) is not None]
        chains: list[tuple[list[str], PendingTrajectory]] = []
        for record in sorted(main, key=lambda r: -len(r.turns)):
            keys = [turn.key for turn in record.turns]
            for chain_keys, trajectory in chains:
                if chain_keys[:len(keys)] == keys:
                    break
            else:
                name = key[0] if len(key) == 1 else (record.record_id.rsplit("-step-", 1)[0] or
                                                     f"{Path(record.origin.split()[0]).stem}-{len(trajectories) + 1}")
                trajectory = PendingTrajectory(str(name), record.task, "", record.origin,
                                               [_step_from_turn(turn, None) for turn in record.turns])
                chains.append((keys, trajectory))
                trajectories.append(trajectory)
            for position, turn in enumerate(record.turns):
                if turn.image is not None and trajectory.steps[position].image is None:
                    trajectory.steps[position].image = turn.image
            _apply_target_metadata(trajectory.steps[len(keys) - 1], record.metadata)
        for record in fixes:
            corrections_for(record, chains, corrections)
    for trajectory in trajectories:
        for number, step in enumerate(trajectory.steps, start=1):
            if step.image is None:
                raise ImportRefused(
                    f"{step.origin}: step {number} of trajectory {trajectory.id!r} has no screenshot in any record "
                    "(its sample is missing and history screenshots were dropped); include every step's sample.")
    return trajectories, corrections


def corrections_for(record: RawRecord, chains, corrections: list[PendingCorrection]) -> None:
    position = _correction_position(record)
    keys = [turn.key for turn in record.turns]
    prefix = keys[:position]
    trajectory = next((t for chain_keys, t in chains if chain_keys[:position] == prefix and len(chain_keys) > position),
                      None)
    if trajectory is None or position >= len(record.turns) - 1:
        raise ImportRefused(f"{record.origin} holds a wrong step (loss false) at step {position + 1}, but no "
                            "trajectory in the import has the steps before it; import its trajectory with it.")
    wrong_turn = record.turns[position]
    existing = next((c for c in corrections if c.trajectory is trajectory and c.position == position
                     and c.wrong_key == wrong_turn.key and _same_recovery_prefix(c, record.turns[position + 1:])), None)
    if existing is None:
        wrong = _step_from_turn(wrong_turn, trajectory.steps[position].image)
        correction_meta = record.metadata.get("correction") or {}
        if isinstance(correction_meta.get("wrong_action_abs"), dict):
            wrong.action_abs = correction_meta["wrong_action_abs"]
        existing = PendingCorrection(trajectory, position, wrong, wrong_key=wrong_turn.key)
        corrections.append(existing)
    for index, turn in enumerate(record.turns[position + 1:]):
        if index >= len(existing.recovery):
            existing.recovery.append(_step_from_turn(turn, None))
        if turn.image is not None and existing.recovery[index].image is None:
            existing.recovery[index].image = turn.image
    _apply_target_metadata(existing.recovery[len(record.turns) - position - 2], record.metadata)


def _same_recovery_prefix(correction: PendingCorrection, turns: list[RawTurn]) -> bool:
    shared = min(len(correction.recovery), len(turns))
    return all(json.dumps([correction.recovery[i].thinking, correction.recovery[i].action], sort_keys=True,
                          ensure_ascii=False) == turns[i].key for i in range(shared))


# ---------------------------------------------------------------------------- checks and conversion


def _checked_size(path: Path, origin: str, sizes: dict) -> tuple[int, int]:
    if path not in sizes:
        try:
            sizes[path] = open_screenshot(path).size  # a full decode: an undecodable image is refused here
        except ImageInputError as error:
            raise ImportRefused(f"{origin}: {error}") from None
    return sizes[path]


def _convert(step: PendingStep, options: ImportOptions) -> None:
    geom = options.frame(step.width, step.height)

    def point(x, y):
        if isinstance(x, bool) or isinstance(y, bool) or not all(isinstance(v, (int, float)) for v in (x, y)):
            raise ImportRefused(f"{step.origin}: a coordinate must be two numbers, got [{x!r}, {y!r}].")
        try:
            return list(to_original(x, y, options.coords, geom))
        except ValueError as error:
            raise ImportRefused(f"{step.origin}: {error}") from None

    for key in ("coordinate", "start_coordinate", "end_coordinate"):
        value = step.action.get(key)
        if key in step.action and (not isinstance(value, (list, tuple)) or len(value) != 2):
            raise ImportRefused(f"{step.origin}: '{key}' must be two numbers [x, y], got {value!r}.")
    converted = map_points(step.action, point)
    if step.action_abs is not None and _agrees(step.action_abs, converted, geom, options):
        converted = step.action_abs  # the exact value the export started from
    step.action = converted
    box = step.target_abs if step.target_abs is not None else step.target_box
    if box is not None:
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ImportRefused(f"{step.origin}: a target box must be [x0, y0, x1, y1], got {box!r}.")
        if step.target_abs is None:
            box = point(box[0], box[1]) + point(box[2], box[3])
        step.target_box = list(box)


def _agrees(exact: dict, converted: dict, geom, options: ImportOptions) -> bool:
    """The metadata's exact action is used only where it matches the answer up to rounding."""
    from lora_core.data.coords import quantization_error

    if exact.get("action") != converted.get("action"):
        return False
    tolerance_x, tolerance_y = quantization_error(options.coords, geom)
    for key in ("coordinate", "start_coordinate", "end_coordinate"):
        if (key in exact) != (key in converted):
            return False
        if key in exact:
            (ax, ay), (bx, by) = exact[key], converted[key]
            if abs(ax - bx) > tolerance_x + 1e-6 or abs(ay - by) > tolerance_y + 1e-6:
                return False
    return {k: v for k, v in exact.items() if "coordinate" not in k} == \
        {k: v for k, v in converted.items() if "coordinate" not in k}


def resolve(steps: list[PendingStep], options: ImportOptions, progress=None) -> None:
    sizes: dict[Path, tuple[int, int]] = {}
    for done, step in enumerate(steps, start=1):
        step.width, step.height = _checked_size(step.image, step.origin, sizes)
        _convert(step, options)
        if progress:
            progress(done, len(steps), "steps")


# ---------------------------------------------------------------------------- the import


def read_source(source: Path, options: ImportOptions):
    base, found, ignored = discover(Path(source), options.fmt)
    kinds = {kind for kind, _, _ in found}
    if kinds & {"trajectories", "step-lines"} and kinds - {"trajectories", "step-lines"}:
        raise ImportRefused(f"{source} mixes trajectory files and message samples; import them separately.")
    if kinds <= {"trajectories", "step-lines"}:
        return read_folder(base, found), [], ignored, "folder"
    trajectories, corrections = read_samples(base, found)
    fmt = options.fmt if options.fmt != "auto" else ("llamafactory" if "images-records" in kinds else "mai-ui")
    return trajectories, corrections, ignored, fmt


def import_source(store, source: Path, options: ImportOptions, annotator: str = "import", progress=None) -> dict:
    """Read, check and convert everything, then write it in one transaction. Returns a JSON summary."""
    trajectories, corrections, ignored, fmt = read_source(source, options)
    all_steps = [step for t in trajectories for step in t.steps]
    for correction in corrections:
        all_steps += [correction.wrong, *correction.recovery]
    resolve(all_steps, options, progress)

    stored: dict[Path, str] = {}
    new_files = []
    try:
        with store.transaction() as db:
            for step in all_steps:
                if step.image not in stored:
                    digest_path = store.add_image_file(step.image, step.width, step.height, db=db, report=new_files)
                    stored[step.image] = digest_path
            ids = {}
            for trajectory in trajectories:
                rows = [{"image": stored[s.image], "thinking": s.thinking, "action": s.action,
                         "target": {"box": s.target_box, "label": s.target_label} if s.target_box else None}
                        for s in trajectory.steps]
                ids[id(trajectory)] = store.insert_trajectory(db, trajectory.id, trajectory.task, trajectory.app,
                                                              f"import:{Path(source).name}", rows, annotator)
            for correction in corrections:
                recovery = [{"image": stored[r.image], "width": r.width, "height": r.height, "thinking": r.thinking,
                             "action": r.action,
                             "target": {"box": r.target_box, "label": r.target_label} if r.target_box else None}
                            for r in correction.recovery]
                store.insert_correction_row(db, ids[id(correction.trajectory)], correction.position,
                                            correction.wrong.thinking, correction.wrong.action, recovery, annotator)
    except BaseException:
        for relative in new_files:  # nothing half-imported: files copied for a failed import go too
            (store.folder / relative).unlink(missing_ok=True)
        raise
    renamed = {t.id: ids[id(t)] for t in trajectories if ids[id(t)] != t.id}
    return {
        "format": fmt, "coords": options.coords, "max_dim": options.max_dim, "source": str(source),
        "trajectories": len(trajectories), "steps": sum(len(t.steps) for t in trajectories),
        "corrections": len(corrections), "images": len(stored), "ids": [ids[id(t)] for t in trajectories],
        "renamed": renamed, "ignored_files": ignored,
    }
