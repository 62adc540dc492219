"""What the tab shows for an annotator session's open step (see authoring/session.py)."""
from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from lora_core.data.coords import OriginalFrame, as_int_point, from_original

from authoring.export import resized_frame
from authoring.model import Action, Correction, action_fields
from authoring.render import Mark, marked_screenshot, marks_for, thumbnail
from authoring.review import edit_refusal, step_states
from authoring.validate import Problem, correction_problems, step_problems

STEP, WRONG = "step", "wrong action"
PLACEHOLDER_SIZE = (540, 1200)


@dataclass
class View:
    """What the tab shows for the open step."""

    trajectory_id: str
    task: str
    position: int
    step_count: int
    editing: str
    editing_choices: list[str]
    image: Path  # the screenshot being edited, with its marks, at original resolution (or the placeholder)
    width: int
    height: int
    action: dict
    thinking: str
    status: str
    coordinate_text: str
    problems: list[Problem]
    corrections: list[Correction]
    correction_id: int | None
    history: list[tuple[Path, str]]  # previous steps: screenshot, caption
    key: str = ""  # AnnotatorSession.shown_key when this view was drawn
    messages: list[str] = field(default_factory=list)  # sentences for the annotator (gr.Info)
    warnings: list[str] = field(default_factory=list)  # sentences for the annotator (gr.Warning)
    needs_screenshot: str | None = None  # the recovery step has none yet: this sentence asks for one
    fields: tuple[str, ...] = ()  # the action's argument keys: hide the editors of the others
    target: list | None = None  # the target box [x1, y1, x2, y2] of what is edited, abs-original
    elements: list[dict] = field(default_factory=list)  # boxes the screenshot knows: {"label", "kind", "box"}
    status_choices: tuple[str, ...] = ()  # the statuses what is edited can take
    step_states: list[dict] = field(default_factory=list)  # authoring.review.step_states of the trajectory
    locked: str | None = None  # why edits are refused now (submitted or accepted), else None


def placeholder(cache_dir: Path, sentence: str) -> Path:
    """A grey picture saying the screenshot is missing; clicks on it set nothing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"no-screenshot-{hashlib.sha1(sentence.encode()).hexdigest()[:10]}.png"
    if not path.exists():
        picture = Image.new("RGB", PLACEHOLDER_SIZE, (225, 225, 225))
        draw = ImageDraw.Draw(picture)
        for number, line in enumerate(textwrap.wrap(sentence, 40)):
            draw.text((30, 520 + 24 * number), line, fill=(60, 60, 60))
        partial = path.with_name(path.stem + ".part.png")
        picture.save(partial)
        partial.replace(path)
    return path


def build_view(session, store, cache_dir: Path, draw: bool = True) -> View:
    """draw=False skips the server-drawn marks (a browser canvas draws them): image is the plain screenshot."""
    trajectory = store.trajectory(session.trajectory_id)
    steps = store.steps(session.trajectory_id)
    step = session.current_step(store)
    correction = session.current_correction(store)
    kind, record, action, thinking, image, width, height, target = session._target(store)
    for seen_record in filter(None, (step, correction)):
        session.seen.setdefault(("step" if seen_record is step else "correction", seen_record.id),
                                seen_record.info.version)
    role = "step" if session.editing == STEP else ("wrong" if session.editing == WRONG else "recovery")
    marks = marks_for(action, role)
    if session.editing == WRONG:
        marks = marks_for(step.action, "step") + marks  # the right point, for comparison
    if session.pending_point is not None:
        marks.append(Mark("pending", *session.pending_point))
    needs = session.missing_screenshot_sentence(store)
    if image is None:
        picture = placeholder(cache_dir, "No screenshot yet: upload, paste or pick one.")
    elif not draw:
        picture = store.image_path(image)
    else:
        picture = marked_screenshot(store.image_path(image), marks, cache_dir, list(target.box) if target else None)
    problems = step_problems(store, step)
    corrections = [c for c in store.corrections(session.trajectory_id) if c.position == session.position]
    for item in corrections:
        problems += correction_problems(store, item, step)
    choices = [STEP]
    if correction is not None:
        choices += [WRONG] + [f"recovery {i + 1}" for i in range(len(correction.recovery))]
    history = [(thumbnail(store.image_path(s.image), cache_dir), f"{s.number}. {Action.from_dict(s.action).describe()}")
               for s in steps[:session.position]]
    try:
        fields = action_fields(action.get("action"))
    except ValueError:
        fields = ()
    return View(session.trajectory_id, trajectory.task, session.position, len(steps), session.editing, choices, picture,
                width, height, action, thinking, session.part_status(store), coordinate_text(session, action, width, height),
                problems, corrections, correction.id if correction else None, history, session.shown_key,
                needs_screenshot=needs, fields=fields, target=list(target.box) if target else None,
                elements=session.target_elements(store), status_choices=session.status_choices(),
                step_states=step_states(store, session.trajectory_id),
                locked=edit_refusal(store, session.trajectory_id))


def coordinate_text(session, action: dict, width: int, height: int) -> str:
    """The action's points in abs-original and in the export convention."""
    parts = []
    try:
        geom = (resized_frame(session.encoder, session.export_max_dim) or OriginalFrame)(width, height)
    except ValueError:
        geom = None
    for key in ("coordinate", "start_coordinate", "end_coordinate"):
        point = action.get(key)
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            continue
        x, y = point
        text = f"{key}: abs-original ({x:.0f}, {y:.0f})"
        if geom is not None and session.export_coords != "abs-original":
            try:
                converted = as_int_point(from_original(x, y, session.export_coords, geom), session.export_coords, geom)
                text += f" · {session.export_coords} ({converted[0]}, {converted[1]})"
            except ValueError as error:
                text += f" · {error}"
        parts.append(text)
    if session.pending_point is not None:
        parts.append(f"start set at ({session.pending_point[0]:.0f}, {session.pending_point[1]:.0f}); click the end point")
    return " | ".join(parts) if parts else "no point: this action takes none"
