"""MAI-UI's agent answer format and action space: one place to write, parse and check an answer.

An answer is `<thinking>…</thinking><tool_call>{"name": "mobile_use", "arguments": {…}}</tool_call>`.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

TOOL_NAME = "mobile_use"
POINT_KEYS = ("coordinate", "start_coordinate", "end_coordinate")
SYSTEM_BUTTONS = ("back", "home", "menu", "enter")
SWIPE_DIRECTIONS = ("up", "down", "left", "right")
TERMINATE_STATUSES = ("success", "fail")

# action -> (required argument keys, optional argument keys)
ACTION_SPACE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "click": (("coordinate",), ()),
    "long_press": (("coordinate",), ()),
    "swipe": (("direction",), ("coordinate",)),
    "drag": (("start_coordinate", "end_coordinate"), ()),
    "type": (("text",), ()),
    "open": (("text",), ()),
    "system_button": (("button",), ()),
    "wait": ((), ()),
    "terminate": (("status",), ()),
    "answer": (("text",), ()),
}

PLACEHOLDER_THOUGHTS = (
    "i will click the button.",
    "thought: i will click the button.",
    "i will click the button",
    "click",
    "...",
    "todo",
    "tbd",
)

ANSWER_PATTERN = re.compile(r"^\s*<thinking>(?P<thinking>.*?)</thinking>\s*<tool_call>(?P<call>.*?)</tool_call>\s*$", re.S)


def action_problems(action: dict) -> list[str]:
    """Everything wrong with an action dict (MAI-UI `arguments`), as sentences; empty when valid."""
    if not isinstance(action, dict):
        return ["The action must be a JSON object."]
    kind = action.get("action")
    if kind not in ACTION_SPACE:
        return [f"Unknown action {kind!r}; use one of: {', '.join(ACTION_SPACE)}."]
    required, optional = ACTION_SPACE[kind]
    problems = []
    for key in required:
        if key not in action:
            problems.append(f"A {kind} action needs '{key}'.")
    extra = set(action) - {"action", *required, *optional}
    if extra:
        problems.append(f"A {kind} action does not take {', '.join(sorted(extra))}.")
    for key in POINT_KEYS:
        if key in action:
            problem = point_problem(key, action[key])
            if problem:
                problems.append(problem)
    if kind == "system_button" and action.get("button") not in SYSTEM_BUTTONS:
        problems.append(f"'button' must be one of {', '.join(SYSTEM_BUTTONS)}.")
    if kind == "swipe" and action.get("direction") not in SWIPE_DIRECTIONS:
        problems.append(f"'direction' must be one of {', '.join(SWIPE_DIRECTIONS)}.")
    if kind == "terminate" and action.get("status") not in TERMINATE_STATUSES:
        problems.append("'status' must be success or fail.")
    if kind in ("type", "open", "answer") and not (isinstance(action.get("text"), str) and action.get("text").strip()):
        problems.append(f"A {kind} action needs a non-empty 'text'.")
    return problems


def point_problem(key: str, point) -> str | None:
    """What is wrong with one point of an action: not two numbers, not finite (NaN, Infinity) or negative."""
    if (
        not isinstance(point, (list, tuple))
        or len(point) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
    ):
        return f"'{key}' must be two numbers [x, y], got {shown_point(point)}."
    shown = shown_point(point)
    if not all(math.isfinite(v) for v in point):
        return f"'{key}' {shown} is not a finite point: NaN and Infinity are no place on a screenshot."
    if any(v < 0 for v in point):
        return f"'{key}' {shown} is negative: coordinates start at 0 in every convention."
    return None


def shown_point(point) -> str:
    """A point as the answer writes it ([NaN, -5]), cut short when it is not a point at all."""
    if isinstance(point, (list, tuple)) and len(point) == 2 and all(isinstance(v, (int, float)) for v in point):
        return json.dumps(list(point))
    text = repr(point)
    return text if len(text) <= 60 else text[:59] + "…"


def point_problems(action) -> list[tuple[str, object, str]]:
    """(key, point, problem) for each bad point of an action dict."""
    if not isinstance(action, dict):
        return []
    found = []
    for key in POINT_KEYS:
        if key in action:
            problem = point_problem(key, action[key])
            if problem:
                found.append((key, action[key], problem))
    return found


def is_placeholder_thought(thinking: str) -> bool:
    text = re.sub(r"\s+", " ", (thinking or "").strip()).lower()
    return not text or text in PLACEHOLDER_THOUGHTS or len(text) < 8


def format_answer(thinking: str, action: dict) -> str:
    call = {"name": TOOL_NAME, "arguments": action}
    return f"<thinking>{thinking}</thinking><tool_call>{json.dumps(call, ensure_ascii=False)}</tool_call>"


@dataclass
class ParsedAnswer:
    thinking: str | None = None
    action: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a model or dataset answer; `problems` says what is wrong with its format."""
    match = ANSWER_PATTERN.match(text or "")
    if not match:
        return ParsedAnswer(problems=["The answer is not exactly <thinking>…</thinking><tool_call>{json}</tool_call>."])
    thinking = match.group("thinking").strip()
    try:
        call = json.loads(match.group("call").strip())
    except json.JSONDecodeError as error:
        return ParsedAnswer(thinking, None, [f"The tool call is not valid JSON ({error.msg})."])
    except RecursionError:
        return ParsedAnswer(thinking, None, ["The tool call is nested too deeply to be read; it is not an action."])
    if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
        return ParsedAnswer(thinking, None, ['The tool call must be {"name": "mobile_use", "arguments": {…}}.'])
    problems = []
    if call.get("name") != TOOL_NAME:
        problems.append(f"The tool name is {call.get('name')!r}, not {TOOL_NAME!r}.")
    action = call["arguments"]
    problems += action_problems(action)
    return ParsedAnswer(thinking, action, problems)


def map_points(action: dict, convert) -> dict:
    """A copy of `action` with every point passed through convert(x, y) -> (x, y)."""
    mapped = dict(action)
    for key in POINT_KEYS:
        if key in mapped and isinstance(mapped[key], (list, tuple)) and len(mapped[key]) == 2:
            mapped[key] = list(convert(*mapped[key]))
    return mapped
