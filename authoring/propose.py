"""Proposed wrong actions for error → correction data, built from the step's element boxes when known.

- neighbour: the click moved onto the nearest other clickable element;
- wrong type: the right place, the wrong kind of action (click ↔ long_press, swipe reversed, …);
- wrong app: another app opened (or another app icon tapped on a home screen).
"""
from __future__ import annotations

import math

from authoring.model import Step

PROPOSALS = ("neighbour", "wrong type", "wrong app")
CLICKABLE_KINDS = ("row", "icon", "button", "tab", "text_field", "app_icon", "text")
FALLBACK_APPS = ("Gallery", "Settings", "Calendar", "Notes", "Maps", "Clock")
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}


class NoProposal(ValueError):
    """This kind of wrong action cannot be built for the step; the message says why."""


def _centre(box) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2


def _inside(inner, outer) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def neighbour_element(step: Step, elements: list[dict]) -> dict:
    """The clickable element nearest to the step's point that is neither its target nor part of it."""
    point = step.action.get("coordinate")
    if not isinstance(point, (list, tuple)):
        raise NoProposal(f"Step {step.number} is a {step.action.get('action')} without a point; a neighbouring "
                         "element needs a click or long press.")
    target = step.target.box if step.target else None
    candidates = []
    for element in elements:
        box = element["box"]
        if element.get("kind") not in CLICKABLE_KINDS:
            continue
        x0, y0, x1, y1 = box
        if x0 <= point[0] < x1 and y0 <= point[1] < y1:
            continue  # under the right point: not a different element
        if target and (_inside(box, target) or _inside(target, box)):
            continue
        candidates.append((math.dist(_centre(box), point), element["label"], element))
    if not candidates:
        raise NoProposal(f"No other clickable element is known on step {step.number}'s screenshot; click where "
                         "the wrong tap should land instead.")
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


def _label_name(label: str) -> str:
    return label.split(":", 1)[-1].strip() or label


def propose_wrong(step: Step, elements: list[dict], kind: str, task: str, app: str = "") -> tuple[str, dict, str]:
    """(wrong thinking, wrong action in abs-original pixels, one line describing it)."""
    action = step.action
    if kind == "neighbour":
        element = neighbour_element(step, elements)
        name = _label_name(element["label"])
        x, y = _centre(element["box"])
        wrong = {"action": action["action"] if action["action"] in ("click", "long_press") else "click",
                 "coordinate": [round(x), round(y)]}
        thinking = (f"To {task[0].lower() + task[1:] if task else 'finish the task'}, {name} looks like the right "
                    f"place to go next, so I tap it.")
        return thinking, wrong, f"tap on the neighbouring element {element['label']!r}"
    if kind == "wrong type":
        kind_now = action.get("action")
        if kind_now == "click":
            wrong = {"action": "long_press", "coordinate": list(action["coordinate"])}
        elif kind_now == "long_press":
            wrong = {"action": "click", "coordinate": list(action["coordinate"])}
        elif kind_now == "swipe":
            wrong = {**action, "direction": OPPOSITE.get(action.get("direction"), "up")}
        elif kind_now in ("type", "open") and action.get("text"):
            wrong = {"action": "wait"}
        elif kind_now == "system_button":
            wrong = {"action": "system_button", "button": "home" if action.get("button") != "home" else "back"}
        elif kind_now == "terminate":
            wrong = {"action": "swipe", "direction": "up"}
        else:
            wrong = {"action": "system_button", "button": "back"}
        thinking = (f"The screen is ready for the next action of the task, so I {_verb(wrong)} here to move on.")
        return thinking, wrong, f"{wrong['action']} instead of {kind_now}"
    if kind == "wrong app":
        apps = [e for e in elements if e.get("kind") == "app_icon"]
        right_app = (action.get("text") or app or "").lower()
        if action.get("action") == "click" and apps:
            others = [e for e in apps if right_app not in e["label"].lower()]
            if step.target:
                others = [e for e in others if e["box"] != list(step.target.box)]
            if others:
                point = action.get("coordinate") or _centre(others[0]["box"])
                element = min(others, key=lambda e: (math.dist(_centre(e["box"]), point), e["label"]))
                x, y = _centre(element["box"])
                name = _label_name(element["label"])
                return (f"The task needs an app from the home screen; {name} should be the one, so I tap its icon.",
                        {"action": "click", "coordinate": [round(x), round(y)]}, f"tap on {name} instead")
        names = [_label_name(e["label"]) for e in apps] or list(FALLBACK_APPS)
        wrong_app = next((n for n in names if n.lower() != right_app and n.lower() not in right_app), FALLBACK_APPS[0])
        return (f"The task is done in another app, and {wrong_app} sounds like it, so I open {wrong_app}.",
                {"action": "open", "text": wrong_app}, f"open {wrong_app}")
    raise NoProposal(f"Unknown proposal {kind!r}; use one of: {', '.join(PROPOSALS)}.")


def _verb(action: dict) -> str:
    kind = action["action"]
    return {"long_press": "long-press", "system_button": f"press {action.get('button', 'back')}",
            "swipe": f"swipe {action.get('direction', 'up')}"}.get(kind, kind)


def default_recovery(step: Step, after_image: str, after_size: tuple[int, int]) -> list[dict]:
    """Back from the screen after the error, then the step's own right action on its own screenshot."""
    return [
        {"image": after_image, "width": after_size[0], "height": after_size[1],
         "thinking": "This screen is not what the task needs: my last action went to the wrong place. "
                     "I go back to the previous screen.",
         "action": {"action": "system_button", "button": "back"}, "target": None},
        {"image": step.image, "width": step.width, "height": step.height, "thinking": step.thinking,
         "action": dict(step.action), "target": step.target.to_json() if step.target else None},
    ]
