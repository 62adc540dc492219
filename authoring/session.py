"""One annotator's view of the store: which step is open, what the clicks edit, and what to show.

The tab keeps one `AnnotatorSession` per browser session and turns its `View` into components.
Every edit is saved at once, against the version the annotator last saw.
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from authoring.model import RECOVERY_STEP_STATUSES, STATUSES, Action, Correction, Step, clean_action, direction_between
from authoring.propose import NoProposal, default_recovery, propose_wrong
from authoring.review import edit_refusal
from authoring.session_targets import TargetBoxEditing
from authoring.session_view import STEP, WRONG, View, build_view, coordinate_text
from authoring.store import Editor, RecordMissing, StaleEdit, Store, TrajectoryLocked

__all__ = ["STEP", "WRONG", "AnnotatorSession", "View", "recovery_label"]


def recovery_label(index: int) -> str:
    return f"recovery {index + 1}"


@dataclass
class AnnotatorSession(TargetBoxEditing):
    annotator: str = "annotator"
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    trajectory_id: str | None = None
    position: int = 0
    editing: str = STEP
    correction_id: int | None = None
    pending_point: tuple[float, float] | None = None  # first click of a swipe or drag
    drawing_box: bool = False  # the next two clicks are a target box's corners
    pending_corner: tuple[float, float] | None = None  # its first corner
    seen: dict = field(default_factory=dict)  # (kind, id) -> version the annotator last saw
    last_activity: float = field(default_factory=time.monotonic)
    export_coords: str = "norm1000"
    export_max_dim: int | None = None
    encoder: object | None = None  # the chosen model's encoder (abs-resized previews)

    @property
    def editor(self) -> Editor:
        return Editor(self.annotator or "annotator", self.session_id)

    # ------------------------------------------------------------------ navigation

    def open(self, store: Store, trajectory_id: str, position: int = 0) -> None:
        steps = store.steps(trajectory_id)
        if not steps:
            raise RecordMissing(f"Trajectory {trajectory_id!r} has no steps.")
        self.trajectory_id = trajectory_id
        self.position = min(max(position, 0), len(steps) - 1)
        self.editing, self.pending_point = STEP, None
        self.seen = {}  # what the view shows next is what the annotator has seen
        corrections = self._step_corrections(store)
        self.correction_id = corrections[0].id if corrections else None
        self.last_activity = time.monotonic()

    def move(self, store: Store, delta: int) -> list[str]:
        count = len(store.steps(self.trajectory_id))
        target = self.position + delta
        if not 0 <= target < count:
            return ["This is the last step of the trajectory." if delta > 0 else "This is the first step."]
        self.open(store, self.trajectory_id, target)
        return []

    def current_step(self, store: Store) -> Step:
        steps = store.steps(self.trajectory_id)
        if not steps:
            raise RecordMissing(f"Trajectory {self.trajectory_id!r} has no steps.")
        self.position = min(self.position, len(steps) - 1)
        return steps[self.position]

    def _step_corrections(self, store: Store) -> list[Correction]:
        return [c for c in store.corrections(self.trajectory_id) if c.position == self.position]

    def current_correction(self, store: Store) -> Correction | None:
        if self.correction_id is None:
            return None
        try:
            correction = store.correction(self.correction_id)
        except RecordMissing:
            self.correction_id, self.editing = None, STEP
            return None
        if correction.trajectory_id != self.trajectory_id or correction.position != self.position:
            self.correction_id, self.editing = None, STEP
            return None
        return correction

    # ------------------------------------------------------------------ what is being edited

    def _target(self, store: Store):
        """(kind, record, action, thinking, image, width, height, target) of what the clicks edit now."""
        step = self.current_step(store)
        correction = self.current_correction(store)
        if self.editing != STEP and correction is not None:
            if self.editing == WRONG:
                return ("correction", correction, correction.wrong_action, correction.wrong_thinking, step.image,
                        step.width, step.height, None)
            index = int(self.editing.split()[-1]) - 1
            if 0 <= index < len(correction.recovery):
                rec = correction.recovery[index]
                return ("correction", correction, rec.action, rec.thinking, rec.image, rec.width, rec.height, rec.target)
        self.editing = STEP
        return ("step", step, step.action, step.thinking, step.image, step.width, step.height, step.target)

    def _seconds(self) -> float:
        now = time.monotonic()
        elapsed, self.last_activity = now - self.last_activity, now
        return elapsed

    def _save(self, store: Store, record, kind: str, changes: dict) -> list[str]:
        """Save against the version the annotator saw; on a stale edit show the newer one and say so."""
        refusal = edit_refusal(store, self.trajectory_id)
        if refusal:
            return [refusal]
        key = (kind, record.id)
        expected = self.seen.get(key, record.info.version)
        try:
            updated = store.edit(kind, record.id, changes, expected, self.editor, self._seconds())
        except StaleEdit as stale:
            self.seen[key] = stale.current.info.version
            return [str(stale)]
        self.seen[key] = updated.info.version
        return []

    def _save_answer(self, store: Store, action: dict | None = None, thinking: str | None = None) -> list[str]:
        kind, record, old_action, old_thinking, *_ = self._target(store)
        action = clean_action(old_action if action is None else action)  # fields the kind does not take go
        thinking = old_thinking if thinking is None else thinking
        if kind == "step":
            return self._save(store, record, "step", {"action": action, "thinking": thinking})
        if self.editing == WRONG:
            return self._save(store, record, "correction", {"wrong_action": action, "wrong_thinking": thinking})
        index = int(self.editing.split()[-1]) - 1
        recovery = [r.to_json() for r in record.recovery]
        recovery[index] = {**recovery[index], "action": action, "thinking": thinking}
        return self._save(store, record, "correction", {"recovery": recovery})

    # ------------------------------------------------------------------ edits

    def click(self, store: Store, x: float, y: float) -> tuple[list[str], list[str]]:
        """A click on the screenshot at abs-original (x, y). Returns (notes, warnings)."""
        _, _, action, _, image, width, height, _ = self._target(store)
        if image is None:
            return [], [self.missing_screenshot_sentence(store)]
        if self.drawing_box:
            return self.click_box_corner(store, x, y)
        x, y = min(max(float(x), 0.0), float(width)), min(max(float(y), 0.0), float(height))
        x, y = round(x, 1), round(y, 1)
        current = Action.from_dict(action)
        notes = []
        if current.kind in ("swipe", "drag"):
            if self.pending_point is None:
                self.pending_point = (x, y)
                return ([f"Start point ({x:.0f}, {y:.0f}) set; click where the {current.kind} ends."], [])
            start, self.pending_point = self.pending_point, None
            if current.kind == "drag":
                updated = current.with_(start=start, end=(x, y))
            else:
                updated = current.with_(coordinate=start, direction=direction_between(start, (x, y)))
        elif current.kind in ("click", "long_press"):
            updated = current.with_(coordinate=(x, y))
        else:
            updated = Action("click", coordinate=(x, y))
            notes.append(f"A {current.kind} takes no point, so this step is now a click at ({x:.0f}, {y:.0f}).")
        return notes, self._save_answer(store, action=updated.to_dict())

    def set_kind(self, store: Store, kind: str) -> list[str]:
        _, _, action, *_ = self._target(store)
        current = Action.from_dict(action)
        if kind == current.kind:
            return []
        self.pending_point = None
        point = current.coordinate or current.start
        updated = current.with_(kind=kind)
        if kind == "drag" and point and not current.start:
            updated = updated.with_(start=point)
        if kind in ("click", "long_press", "swipe") and not current.coordinate and current.start:
            updated = updated.with_(coordinate=current.start)
        return self._save_answer(store, action=updated.to_dict())

    def set_fields(self, store: Store, **fields) -> list[str]:
        """text / button / direction / status of the action, and thinking; unchanged values save nothing."""
        _, _, action, thinking, *_ = self._target(store)
        current = Action.from_dict(action)
        new_thinking = fields.pop("thinking", None)
        fields = {k: v for k, v in fields.items() if v is not None}
        updated = current.with_(**fields).to_dict() if fields else action
        if new_thinking is not None:
            new_thinking = new_thinking.strip()
        return self._save_answer(store, action=updated, thinking=new_thinking)

    def recovery_index(self) -> int | None:
        """0-based index of the recovery step being edited, or None."""
        return int(self.editing.split()[-1]) - 1 if self.editing.startswith("recovery ") else None

    def status_choices(self) -> tuple[str, ...]:
        return RECOVERY_STEP_STATUSES if self.recovery_index() is not None else STATUSES

    def part_status(self, store: Store) -> str:
        """The status of what the clicks edit: the step, the correction (wrong action) or one recovery step."""
        kind, record, *_ = self._target(store)
        index = self.recovery_index()
        return record.recovery[index].status if kind == "correction" and index is not None else record.info.status

    def set_status(self, store: Store, status: str) -> list[str]:
        """The status of the part being edited only: a recovery step's own, never its whole correction's."""
        kind, record, *_ = self._target(store)
        index = self.recovery_index()
        if kind != "correction" or index is None:
            return self._save(store, record, kind, {"status": status})
        refusal = edit_refusal(store, self.trajectory_id)
        if refusal:
            return [refusal]
        key = ("correction", record.id)
        try:
            updated = store.set_recovery_status(record.id, index, status, self.seen.get(key, record.info.version),
                                                self.editor, self._seconds())
        except StaleEdit as stale:
            self.seen[key] = stale.current.info.version
            return [str(stale)]
        self.seen[key] = updated.info.version
        return []

    def save_done(self, store: Store, text: str | None = None, thinking: str | None = None,
                  key: str | None = None) -> tuple[list[str], list[str]]:
        """Save: the typed fields, then mark done the part the annotator is on (step, wrong action or recovery k)."""
        with self.showing(key):
            warnings = self.set_fields(store, text=text, thinking=thinking)
            if not warnings:
                warnings = self.set_status(store, "done")
            part = self.editing
        return ([] if warnings else [f"Saved; {part} marked done."]), warnings

    def mark_wrong(self, store: Store, proposal: str | None) -> tuple[list[str], list[str]]:
        """Create a correction at this step; the wrong action is proposed from element boxes, or a copy to click."""
        step = self.current_step(store)
        trajectory = store.trajectory(self.trajectory_id)
        elements = list(store.screenshot(step.image).elements)
        if step.target and not elements:
            elements = [{"label": step.target.label or "target", "kind": "button", "box": list(step.target.box)}]
        notes = []
        if proposal:
            try:
                thinking, wrong, description = propose_wrong(step, elements, proposal, trajectory.task, trajectory.app)
                notes.append(f"Proposed wrong action: {description}. Click the screenshot to move it.")
            except NoProposal as error:
                return [], [str(error)]
        else:
            thinking, wrong = "", dict(step.action)
            notes.append("The wrong action starts as a copy of the step's action: click where the wrong tap lands "
                         "and write its thinking.")
        refusal = edit_refusal(store, self.trajectory_id)
        if refusal:
            return [], [refusal]
        recovery = default_recovery(step, step.image, (step.width, step.height))
        # the screen after the error is never guessed: recovery 1 waits for the annotator's screenshot
        recovery[0] = {**recovery[0], "image": None, "width": 0, "height": 0}
        correction = store.create_correction(self.trajectory_id, self.position, thinking, wrong, recovery, self.editor)
        self.seen[("correction", correction.id)] = correction.info.version
        self.correction_id, self.editing, self.pending_point = correction.id, WRONG, None
        notes.append("Recovery 1 needs the screenshot after the error: upload, paste or pick it.")
        return notes, []

    def missing_screenshot_sentence(self, store: Store) -> str | None:
        """The request for a screenshot when the recovery step being edited has none, else None."""
        index = self.recovery_index()
        correction = self.current_correction(store)
        if index is None or correction is None or index >= len(correction.recovery):
            return None
        if correction.recovery[index].image is not None:
            return None
        what = "the screen after the error" if index == 0 else "the screen this step answers"
        return f"Recovery {index + 1} has no screenshot yet: upload, paste or pick {what}."

    def set_recovery_image(self, store: Store, image: str, index: int | None = None) -> list[str]:
        """Give recovery step `index` (default: the one being edited, else recovery 1) its screenshot."""
        correction = self.current_correction(store)
        if correction is None or not correction.recovery:
            return ["Mark the step wrong first: the screenshot after the error belongs to a correction."]
        index = (self.recovery_index() or 0) if index is None else index
        if not 0 <= index < len(correction.recovery):
            return [f"This correction has no recovery step {index + 1}."]
        shot = store.screenshot(image)
        recovery = [r.to_json() for r in correction.recovery]
        if recovery[index]["image"] != shot.path:
            recovery[index]["target"] = None  # a box drawn on another screenshot does not apply
        recovery[index] = {**recovery[index], "image": shot.path, "width": shot.width, "height": shot.height}
        return self._save(store, correction, "correction", {"recovery": recovery})

    def set_after_image(self, store: Store, image: str) -> list[str]:
        return self.set_recovery_image(store, image, 0)

    def add_recovery(self, store: Store) -> list[str]:
        correction = self.current_correction(store)
        if correction is None:
            return ["Mark the step wrong first."]
        step = self.current_step(store)
        # the step's answer to start from; its screenshot is asked for, not guessed
        recovery = [r.to_json() for r in correction.recovery] + [
            {"image": None, "width": 0, "height": 0, "thinking": step.thinking, "action": dict(step.action),
             "target": None, "status": "draft"}]
        warnings = self._save(store, correction, "correction", {"recovery": recovery})
        if not warnings:
            self.editing = recovery_label(len(recovery) - 1)
        return warnings

    def remove_recovery(self, store: Store) -> list[str]:
        correction = self.current_correction(store)
        if correction is None or len(correction.recovery) <= 1:
            return ["A correction keeps at least one recovery step."]
        recovery = [r.to_json() for r in correction.recovery][:-1]
        self.editing = STEP if self.editing == recovery_label(len(recovery)) else self.editing
        return self._save(store, correction, "correction", {"recovery": recovery})

    def delete_correction(self, store: Store) -> list[str]:
        correction = self.current_correction(store)
        if correction is None:
            return []
        refusal = edit_refusal(store, self.trajectory_id)
        if refusal:
            return [refusal]
        try:
            store.delete_correction(correction.id, self.seen.get(("correction", correction.id), correction.info.version),
                                    self.editor)
        except StaleEdit as stale:
            return [str(stale)]
        remaining = self._step_corrections(store)
        self.correction_id = remaining[0].id if remaining else None
        self.editing = STEP
        return []

    def undo(self, store: Store, redo: bool = False) -> tuple[list[str], list[str]]:
        try:
            done = store.redo(self.editor) if redo else store.undo(self.editor)
        except StaleEdit as stale:
            record = stale.current
            self.seen[(_kind_of(record), record.id)] = record.info.version
            return [], [str(stale)]
        except (RecordMissing, TrajectoryLocked) as error:
            return [], [str(error)]
        if done is None:
            return [], [f"Nothing to {'redo' if redo else 'undo'} in this session."]
        kind, record_id = done
        self._follow(store, kind, record_id)
        return [f"{'Redid' if redo else 'Undid'} your last edit of {kind} {record_id}."], []

    def _follow(self, store: Store, kind: str, record_id) -> None:
        """Show the record an undo or redo touched."""
        try:
            record = store.record(kind, record_id)
        except RecordMissing:
            self.current_correction(store)
            return
        self.seen[(kind, record.id)] = record.info.version
        if kind == "step":
            if (record.trajectory_id, record.position) != (self.trajectory_id, self.position):
                self.open(store, record.trajectory_id, record.position)
        elif kind == "correction":
            if (record.trajectory_id, record.position) != (self.trajectory_id, self.position):
                self.open(store, record.trajectory_id, record.position)
            self.correction_id = record.id

    def choose_correction(self, store: Store, correction_id) -> None:
        self.correction_id = int(correction_id) if correction_id not in (None, "") else None
        if self.correction_id is None:
            self.editing = STEP
        self.pending_point = None

    @property
    def shown_key(self) -> str:
        """Names what the editors show, so an edit typed there is saved there even if the view moved on."""
        return f"{self.trajectory_id}|{self.position}|{self.editing}|{self.correction_id or ''}"

    @contextmanager
    def showing(self, key: str | None):
        """Edit the record `key` named (a blur racing a Next click), then come back to the current one."""
        current = (self.trajectory_id, self.position, self.editing, self.correction_id)
        if not key or key == self.shown_key:
            yield
            return
        trajectory_id, position, editing, correction_id = key.split("|")
        self.trajectory_id, self.position, self.editing = trajectory_id, int(position), editing
        self.correction_id = int(correction_id) if correction_id else None
        try:
            yield
        finally:
            self.trajectory_id, self.position, self.editing, self.correction_id = current

    def choose_editing(self, editing: str) -> None:
        self.editing, self.pending_point = editing or STEP, None
        self.drawing_box, self.pending_corner = False, None

    # ------------------------------------------------------------------ the view

    def view(self, store: Store, cache_dir: Path, draw: bool = True) -> View:
        """What to show; draw=False leaves the marks to the browser (View.image is then the plain screenshot)."""
        return build_view(self, store, cache_dir, draw)

    def coordinate_text(self, action: dict, width: int, height: int) -> str:
        return coordinate_text(self, action, width, height)


def _kind_of(record) -> str:
    if isinstance(record, Step):
        return "step"
    if isinstance(record, Correction):
        return "correction"
    return "trajectory"
