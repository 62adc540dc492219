"""The demo's data: screens with their labelled elements, trajectories of steps, and reading them from JSON.

Coordinates are absolute pixels of the 1080x2400 screenshot; boxes are (x0, y0, x1, y1) with
x1/y1 exclusive. For text, the box is the measured ink box of the rendered glyphs and
`text_height` is the font size in pixels (the em height the text was drawn with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEMO_VERSION = 1  # a folder written under another version is drawn again

WIDTH, HEIGHT = 1080, 2400  # every screenshot, in pixels
APP_NAME = "CloudDrive"
KINDS = frozenset({  # the element kinds a screen may hold
    "status_bar", "header", "row", "icon", "text", "button", "tab",
    "text_field", "app_icon", "keyboard", "dialog",
})


@dataclass(frozen=True)
class Element:
    label: str
    kind: str
    box: tuple[int, int, int, int]
    text_height: int | None = None

    @property
    def center(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) // 2, (y0 + y1) // 2

    def to_json(self) -> dict:
        return {"label": self.label, "kind": self.kind, "box": list(self.box),
                "text_height": self.text_height}

    @classmethod
    def from_json(cls, data: dict) -> Element:
        return cls(data["label"], data["kind"], tuple(int(v) for v in data["box"]),
                   data.get("text_height"))


@dataclass(frozen=True)
class DemoScreen:
    name: str
    path: Path
    width: int
    height: int
    elements: tuple[Element, ...]

    def element(self, label: str) -> Element:
        for item in self.elements:
            if item.label == label:
                return item
        raise KeyError(f"screen {self.name!r} has no element labelled {label!r}")


@dataclass(frozen=True)
class DemoStep:
    screenshot: str
    thinking: str
    action: dict
    target: Element | None


@dataclass(frozen=True)
class DemoTrajectory:
    id: str
    task: str
    app: str
    steps: tuple[DemoStep, ...]


@dataclass(frozen=True)
class DemoData:
    root: Path
    screens: tuple[DemoScreen, ...]
    trajectories: tuple[DemoTrajectory, ...]

    def screen(self, name: str) -> DemoScreen:
        for item in self.screens:
            if item.name == name:
                return item
        known = ", ".join(s.name for s in self.screens)
        raise KeyError(f"no demo screen named {name!r} (known: {known})")


def load_demo(root: Path) -> DemoData:
    """Read a finished demo folder; raises if anything is missing or malformed."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or manifest.get("version") != DEMO_VERSION:
        raise ValueError(f"demo manifest version {manifest!r} is not {DEMO_VERSION}")
    screens = []
    for item in json.loads((root / "screens.json").read_text(encoding="utf-8")):
        path = root / item["image"]
        if not path.is_file():
            raise FileNotFoundError(path)
        elements = tuple(Element.from_json(e) for e in item["elements"])
        screens.append(DemoScreen(item["name"], path, int(item["width"]), int(item["height"]), elements))
    names = {s.name for s in screens}
    trajectories = []
    for item in json.loads((root / "trajectories.json").read_text(encoding="utf-8")):
        steps = []
        for step in item["steps"]:
            if step["screenshot"] not in names:
                raise ValueError(f"step refers to unknown screen {step['screenshot']!r}")
            target = Element.from_json(step["target"]) if step["target"] else None
            steps.append(DemoStep(step["screenshot"], step["thinking"], step["action"], target))
        trajectories.append(DemoTrajectory(item["id"], item["task"], item["app"], tuple(steps)))
    return DemoData(root, tuple(screens), tuple(trajectories))
