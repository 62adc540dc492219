"""What annotators author: actions, steps, trajectories, corrections, and the record bookkeeping.

Coordinates are always abs-original pixels of the step's screenshot, stored next to its size.
Exports convert them (lora_core.data.coords); nothing here knows about other conventions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import math

from lora_core.data.agent import ACTION_SPACE, POINT_KEYS, SWIPE_DIRECTIONS, SYSTEM_BUTTONS

STATUSES = ("draft", "done", "needs review", "accepted", "rejected")
RECOVERY_STEP_STATUSES = ("draft", "done")  # a recovery step is part of its correction: only its progress
ACTION_KINDS = tuple(ACTION_SPACE)
POINTED_KINDS = ("click", "long_press")


def action_fields(kind: str) -> tuple[str, ...]:
    """The argument keys an action kind takes (MAI-UI's action space): the editors to show for it."""
    if kind not in ACTION_SPACE:
        raise ValueError(f"Unknown action {kind!r}; use one of: {', '.join(ACTION_SPACE)}.")
    required, optional = ACTION_SPACE[kind]
    return required + optional


def clean_action(action: dict) -> dict:
    """The action with only the keys its kind takes (a button left on an open action is dropped)."""
    kind = action.get("action")
    if kind not in ACTION_SPACE:
        return dict(action)
    kept = set(action_fields(kind))
    return {"action": kind, **{key: value for key, value in action.items() if key in kept}}


@dataclass(frozen=True)
class Action:
    """One MAI-UI action. Points are abs-original pixels; fields a kind does not take are ignored."""

    kind: str = "click"
    coordinate: tuple[float, float] | None = None
    start: tuple[float, float] | None = None  # drag
    end: tuple[float, float] | None = None  # drag
    text: str = ""  # type, open (app name), answer
    button: str = "back"  # system_button
    direction: str = "up"  # swipe
    status: str = "success"  # terminate

    @classmethod
    def from_dict(cls, data: dict) -> "Action":
        def point(key):
            value = data.get(key)
            return tuple(value) if isinstance(value, (list, tuple)) else None

        return cls(
            kind=data.get("action", "click"),
            coordinate=point("coordinate"),
            start=point("start_coordinate"),
            end=point("end_coordinate"),
            text=data.get("text", "") if isinstance(data.get("text", ""), str) else "",
            button=data.get("button", "back"),
            direction=data.get("direction", "up"),
            status=data.get("status", "success"),
        )

    def to_dict(self) -> dict:
        """The MAI-UI `arguments` dict, with only the keys this kind takes."""
        out: dict = {"action": self.kind}
        if self.kind in POINTED_KINDS:
            out["coordinate"] = list(self.coordinate) if self.coordinate else None
        elif self.kind == "swipe":
            out["direction"] = self.direction
            if self.coordinate:
                out["coordinate"] = list(self.coordinate)
        elif self.kind == "drag":
            out["start_coordinate"] = list(self.start) if self.start else None
            out["end_coordinate"] = list(self.end) if self.end else None
        elif self.kind in ("type", "open", "answer"):
            out["text"] = self.text
        elif self.kind == "system_button":
            out["button"] = self.button
        elif self.kind == "terminate":
            out["status"] = self.status
        return {key: value for key, value in out.items() if value is not None}

    def with_(self, **changes) -> "Action":
        return replace(self, **changes)

    def points(self) -> list[tuple[float, float]]:
        data = self.to_dict()
        return [tuple(data[key]) for key in POINT_KEYS if key in data]

    def describe(self) -> str:
        data = self.to_dict()
        if self.kind in POINTED_KINDS:
            where = f"({data['coordinate'][0]:.0f}, {data['coordinate'][1]:.0f})" if "coordinate" in data else "(no point yet)"
            return f"{self.kind} {where}"
        if self.kind == "swipe":
            start = f" from ({data['coordinate'][0]:.0f}, {data['coordinate'][1]:.0f})" if "coordinate" in data else ""
            return f"swipe {self.direction}{start}"
        if self.kind == "drag":
            ends = [f"({p[0]:.0f}, {p[1]:.0f})" for p in (self.start, self.end) if p]
            return "drag " + " → ".join(ends) if ends else "drag (no points yet)"
        if self.kind in ("type", "open", "answer"):
            return f"{self.kind} {self.text!r}"
        if self.kind == "system_button":
            return f"system_button {self.button}"
        if self.kind == "terminate":
            return f"terminate {self.status}"
        return self.kind


def direction_between(start, end) -> str:
    """Swipe direction from a start and an end point (the finger's movement)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


@dataclass(frozen=True)
class Target:
    """The element an action is meant to hit, in abs-original pixels (x0, y0, x1, y1), x1/y1 exclusive."""

    box: tuple[float, float, float, float]
    label: str = ""

    def contains(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.box
        return x0 <= x < x1 and y0 <= y < y1

    def to_json(self) -> dict:
        return {"box": list(self.box), "label": self.label}

    @classmethod
    def from_json(cls, data) -> "Target | None":
        if not data or not isinstance(data, dict) or not data.get("box"):
            return None
        return cls(tuple(data["box"]), data.get("label", "") or "")


def box_problem(box, width: int, height: int) -> str | None:
    """Why a typed box [x1, y1, x2, y2] (abs-original pixels) cannot be used on a width×height screenshot."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return "A target box is four numbers x1, y1, x2, y2 in screenshot pixels."
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        return "A target box is four finite numbers x1, y1, x2, y2 in screenshot pixels."
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        which = "x2 must be greater than x1" if x2 <= x1 else "y2 must be greater than y1"
        return f"The box ({x1:g}, {y1:g})–({x2:g}, {y2:g}) is empty or reversed: {which}."
    if min(x1, y1) < 0 or x2 > width or y2 > height:
        return (f"The box ({x1:g}, {y1:g})–({x2:g}, {y2:g}) leaves the {width}×{height} screenshot; keep x between "
                f"0 and {width} and y between 0 and {height}.")
    return None


def parse_box(text_or_values, width: int, height: int) -> tuple[float, float, float, float]:
    """A typed box ("x1, y1, x2, y2" or four numbers) checked against the screenshot; ValueError says why not."""
    values = text_or_values
    if isinstance(values, str):
        parts = [part for part in values.replace(",", " ").replace(";", " ").split() if part]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise ValueError(f"{text_or_values!r} is not four numbers x1, y1, x2, y2.") from None
    problem = box_problem(values, width, height)
    if problem:
        raise ValueError(problem)
    return tuple(float(v) for v in values)


def box_from_corners(first, second, width: int, height: int) -> tuple[float, float, float, float]:
    """The box two clicks (or a drag) span, in either order, kept inside the screenshot."""
    xs = sorted(min(max(float(p[0]), 0.0), float(width)) for p in (first, second))
    ys = sorted(min(max(float(p[1]), 0.0), float(height)) for p in (first, second))
    return parse_box([round(xs[0], 1), round(ys[0], 1), round(xs[1], 1), round(ys[1], 1)], width, height)


@dataclass(frozen=True)
class Screenshot:
    """A stored screenshot: path relative to the store's folder, its size, and element boxes when known."""

    path: str
    width: int
    height: int
    elements: tuple[dict, ...] = ()  # {"label", "kind", "box"}


@dataclass(frozen=True)
class RecordInfo:
    """Bookkeeping every record carries."""

    status: str = "draft"
    annotator: str = ""
    seconds: float = 0.0
    version: int = 1
    updated_at: float = 0.0
    session: str = ""


@dataclass(frozen=True)
class Step:
    id: int
    trajectory_id: str
    position: int  # 0-based
    image: str
    width: int
    height: int
    thinking: str
    action: dict  # MAI-UI arguments, abs-original
    target: Target | None = None
    info: RecordInfo = field(default_factory=RecordInfo)

    @property
    def number(self) -> int:
        return self.position + 1


@dataclass(frozen=True)
class Trajectory:
    id: str
    task: str
    app: str = ""
    source: str = ""
    info: RecordInfo = field(default_factory=RecordInfo)


@dataclass(frozen=True)
class RecoveryStep:
    """One step of a correction after the wrong one: its screenshot and its answer.

    image is None until the annotator gives one (the screen after the error is never guessed).
    """

    image: str | None
    width: int
    height: int
    thinking: str
    action: dict
    target: Target | None = None
    status: str = "draft"  # one of RECOVERY_STEP_STATUSES

    def to_json(self) -> dict:
        return {"image": self.image, "width": self.width, "height": self.height, "thinking": self.thinking,
                "action": self.action, "target": self.target.to_json() if self.target else None,
                "status": self.status}

    @classmethod
    def from_json(cls, data: dict) -> "RecoveryStep":
        status = data.get("status") if data.get("status") in RECOVERY_STEP_STATUSES else "draft"
        return cls(data.get("image") or None, int(data.get("width") or 0), int(data.get("height") or 0),
                   data.get("thinking", ""), dict(data.get("action") or {}), Target.from_json(data.get("target")),
                   status)


@dataclass(frozen=True)
class Correction:
    """A wrong action at a step of a trajectory, and the steps that recover from it.

    The wrong action is taken on the step's own screenshot; recovery[0] is shown the screenshot
    after the error (usually answered with system_button back), later recovery steps their own.
    """

    id: int
    trajectory_id: str
    position: int  # the step where the wrong action is taken
    wrong_thinking: str
    wrong_action: dict
    recovery: tuple[RecoveryStep, ...] = ()
    info: RecordInfo = field(default_factory=RecordInfo)

    @property
    def after_image(self) -> str | None:
        return self.recovery[0].image if self.recovery else None

    def step_states(self) -> list[tuple[str, str]]:
        """(part, status) per part, for the tables: the wrong action carries the correction's own status."""
        return [("wrong action", self.info.status)] + [(f"recovery {n}", r.status)
                                                       for n, r in enumerate(self.recovery, start=1)]


def valid_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; use one of: {', '.join(STATUSES)}.")
    return status


def valid_recovery_status(status: str) -> str:
    if status not in RECOVERY_STEP_STATUSES:
        raise ValueError(f"A recovery step is {' or '.join(RECOVERY_STEP_STATUSES)}, not {status!r}; accept, "
                         "reject or send back the whole correction from its wrong action.")
    return status


__all__ = [
    "ACTION_KINDS", "Action", "Correction", "RECOVERY_STEP_STATUSES", "RecordInfo", "RecoveryStep", "STATUSES",
    "SWIPE_DIRECTIONS", "SYSTEM_BUTTONS", "Screenshot", "Step", "Target", "Trajectory", "action_fields", "box_from_corners",
    "box_problem", "clean_action", "direction_between", "parse_box", "valid_recovery_status", "valid_status",
]
