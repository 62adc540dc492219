"""Checks over authored records. Each failure names the record and says what to fix.

The same checks run live in the tab (one step or correction) and over the whole store (CLI, export).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from lora_core.data.agent import format_answer, is_placeholder_thought, parse_answer
from lora_core.data.images import ImageInputError, open_screenshot

from authoring.model import POINTED_KINDS, Correction, Step, Target, Trajectory

CHECKS = ("format", "schema", "inside", "target", "thinking", "image", "screenshot", "correction")


@dataclass(frozen=True)
class Problem:
    record: str  # e.g. "open_sales_folder step 2" or "… correction 3 (step 2), recovery 1"
    check: str  # one of CHECKS
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        return f"{self.record}: {self.message}"

    def to_json(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=256)
def _decodes(path: str, mtime: float, size: int) -> str | None:
    try:
        open_screenshot(Path(path))
    except ImageInputError as error:
        return str(error)
    return None


def image_problem(path: Path) -> str | None:
    """None when the file exists and decodes; otherwise the sentence saying why not."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return f"the screenshot {path.name} is missing"
    return _decodes(str(path), stat.st_mtime, stat.st_size)


def answer_problems(record: str, thinking: str, action: dict, width: int, height: int, image: Path | None,
                    target: Target | None = None, wrong: bool = False) -> list[Problem]:
    """Every check on one answer: its format, schema, points, target, thinking and screenshot."""
    problems: list[Problem] = []
    parsed = parse_answer(format_answer(thinking, action))
    if parsed.thinking is None:
        problems.append(Problem(record, "format", "the answer is not exactly <thinking>…</thinking><tool_call>{json}"
                                "</tool_call>; remove any <thinking> or <tool_call> tags typed into the thinking."))
    elif parsed.problems:
        problems.append(Problem(record, "schema", " ".join(parsed.problems) + " Fix the action in the editor."))
    for key in ("coordinate", "start_coordinate", "end_coordinate") if width and height else ():
        point = action.get(key)
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            continue
        x, y = point
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            continue
        if not (0 <= x <= width and 0 <= y <= height):
            problems.append(Problem(record, "inside", f"'{key}' ({x:g}, {y:g}) is outside the {width}×{height} "
                                    "screenshot; click on the screenshot to set it again."))
    if (not wrong and target is not None and action.get("action") in POINTED_KINDS
            and isinstance(action.get("coordinate"), (list, tuple)) and len(action["coordinate"]) == 2):
        x, y = action["coordinate"]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not target.contains(x, y):
            x0, y0, x1, y1 = target.box
            name = f" '{target.label}'" if target.label else ""
            problems.append(Problem(record, "target", f"the {action['action']} at ({x:.0f}, {y:.0f}) misses its target"
                                    f"{name} ({x0:.0f}, {y0:.0f})–({x1:.0f}, {y1:.0f}); click inside the element."))
    if is_placeholder_thought(thinking):
        problems.append(Problem(record, "thinking", "the thinking is empty or a placeholder (like \"I will click the "
                                "button.\"); say what the screen shows and why this action."))
    if image is not None:
        reason = image_problem(image)
        if reason:
            problems.append(Problem(record, "image", f"{reason}; re-import or re-upload the screenshot."))
    return problems


def step_name(trajectory_id: str, position: int) -> str:
    return f"{trajectory_id} step {position + 1}"


def correction_name(correction: Correction) -> str:
    return f"{correction.trajectory_id} correction {correction.id} (step {correction.position + 1})"


def step_problems(store, step: Step) -> list[Problem]:
    return answer_problems(step_name(step.trajectory_id, step.position), step.thinking, step.action, step.width,
                           step.height, store.image_path(step.image), step.target)


def correction_problems(store, correction: Correction, step: Step | None) -> list[Problem]:
    name = correction_name(correction)
    problems: list[Problem] = []
    if step is None:
        return [Problem(name, "correction", f"its trajectory has no step {correction.position + 1}; delete it.")]
    problems += answer_problems(f"{name}, wrong action", correction.wrong_thinking, correction.wrong_action,
                                step.width, step.height, None, wrong=True)
    if correction.wrong_action == step.action:
        problems.append(Problem(f"{name}, wrong action", "correction", "the wrong action equals the step's right "
                                "action; click somewhere else or ask for a proposed wrong action."))
    if not correction.recovery:
        problems.append(Problem(name, "correction", "it has no recovery step; add the step that recovers "
                                "(often system_button back), then the right action."))
    for number, recovery in enumerate(correction.recovery, start=1):
        record = f"{name}, recovery {number}"
        problems += recovery_screenshot_problems(record, number, recovery.image, step)
        image = store.image_path(recovery.image) if recovery.image else None
        problems += answer_problems(record, recovery.thinking, recovery.action, recovery.width, recovery.height, image,
                                    recovery.target)
    return problems


def recovery_screenshot_problems(record: str, number: int, image: str | None, step: Step) -> list[Problem]:
    """A recovery step needs its own screenshot; the first one shows the screen the wrong action led to."""
    if image is None:
        what = "the screen after the error" if number == 1 else "the screen this step answers"
        return [Problem(record, "screenshot", f"it has no screenshot yet: upload, paste or pick {what}.")]
    if number == 1 and image == step.image:
        return [Problem(record, "screenshot", f"it shows step {step.number}'s screenshot, from before the error; "
                        "upload, paste or pick the screen the wrong action led to.")]
    return []


def trajectory_problems(store, trajectory: Trajectory, steps: list[Step], corrections: list[Correction]) -> list[Problem]:
    problems: list[Problem] = []
    if not trajectory.task.strip():
        problems.append(Problem(trajectory.id, "format", "the task (instruction) is empty; write what the user asked."))
    if not steps:
        problems.append(Problem(trajectory.id, "format", "it has no steps; import them or delete the trajectory."))
    for step in steps:
        if step.info.status != "rejected":
            problems += step_problems(store, step)
    by_position = {step.position: step for step in steps}
    for correction in corrections:
        if correction.info.status != "rejected":
            problems += correction_problems(store, correction, by_position.get(correction.position))
    return problems


def validate_store(store, progress=None, trajectory_ids=None) -> list[Problem]:
    """All problems of every trajectory not rejected (of those in `trajectory_ids` when given).

    progress(done, total) is called as it goes."""
    trajectories = [t for t in store.trajectories() if t.info.status != "rejected"
                    and (trajectory_ids is None or t.id in trajectory_ids)]
    all_steps, all_corrections = {}, {}
    for step in store.steps():
        all_steps.setdefault(step.trajectory_id, []).append(step)
    for correction in store.corrections():
        all_corrections.setdefault(correction.trajectory_id, []).append(correction)
    problems: list[Problem] = []
    for done, trajectory in enumerate(trajectories, start=1):
        problems += trajectory_problems(store, trajectory, all_steps.get(trajectory.id, []),
                                        all_corrections.get(trajectory.id, []))
        if progress:
            progress(done, len(trajectories))
    return problems
