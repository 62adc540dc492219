"""Draw the demo into `workspace/demo/` once, then only read it back.

`ensure_demo_data(workspace)` draws the screens with Pillow on first use (into a temporary folder
renamed into place, so concurrent callers and crashes never leave a half-written folder) and
afterwards only reads the JSON. Every drawn element is recorded with its pixel box, so the
data can be used to check grounding, resizing and coordinate handling without a real phone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from demo.canvas import Canvas
from demo.model import APP_NAME, DEMO_VERSION, HEIGHT, WIDTH, DemoData, Element, load_demo
from demo.screens import SCREENS
from demo.trajectories import POINTED_ACTIONS, TRAJECTORIES

_DEMO_DIR = "demo"
_TMP_PREFIX = ".demo-tmp-"
_STALE_PREFIX = ".demo-stale-"
_STALE_TMP_AGE_S = 3600


def generate(root: Path) -> None:
    (root / "screens").mkdir(parents=True)
    screens_json = []
    elements_by_screen: dict[str, dict[str, Element]] = {}
    for name, draw in SCREENS:
        canvas = Canvas(name)
        draw(canvas)
        # compress_level 1: ~5x faster than the default, files stay small for these flat images
        canvas.image.save(root / "screens" / f"{name}.png", format="PNG", compress_level=1)
        elements_by_screen[name] = canvas.elements
        screens_json.append({"name": name, "image": f"screens/{name}.png", "width": WIDTH, "height": HEIGHT,
                             "elements": [e.to_json() for e in canvas.elements.values()]})

    trajectories_json = []
    for trajectory_id, task, steps in TRAJECTORIES:
        steps_json = []
        for screen, action, target_label, thinking in steps:
            action = dict(action)
            target = None
            if target_label is not None:
                target = elements_by_screen[screen][target_label]
                if action["action"] in POINTED_ACTIONS or action["action"] == "swipe":
                    action["coordinate"] = list(target.center)
                if action["action"] not in POINTED_ACTIONS:
                    target = None  # only click / long_press carry a target
            steps_json.append({"screenshot": screen, "image": f"screens/{screen}.png", "width": WIDTH,
                               "height": HEIGHT, "thinking": thinking, "action": action,
                               "target": target.to_json() if target else None})
        trajectories_json.append({"id": trajectory_id, "task": task, "app": APP_NAME, "steps": steps_json})

    _write_json(root / "screens.json", screens_json)
    _write_json(root / "trajectories.json", trajectories_json)
    _write_json(root / "manifest.json", {"version": DEMO_VERSION})  # last: marks the folder complete


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _remove_stale_temp_folders(workspace: Path) -> None:
    """Delete leftovers of crashed generations (old enough that no live process still writes them)."""
    now = time.time()
    for path in workspace.iterdir():
        if path.name.startswith((_TMP_PREFIX, _STALE_PREFIX)) and path.is_dir():
            try:
                if now - path.stat().st_mtime > _STALE_TMP_AGE_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def ensure_demo_data(workspace: Path) -> DemoData:
    """Return the demo data under `workspace/demo`, generating it first if missing, stale or broken."""
    workspace = Path(workspace)
    root = workspace / _DEMO_DIR
    try:
        return load_demo(root)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass

    workspace.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_folders(workspace)
    staging = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=workspace))
    try:
        os.chmod(staging, 0o755)
        generate(staging)
        for _ in range(5):
            try:
                os.rename(staging, root)  # atomic; fails if `root` exists and is not empty
                break
            except OSError:
                try:
                    return load_demo(root)  # another process finished first
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    pass
                # old or broken folder: move it aside, then retry the rename
                stale = Path(tempfile.mkdtemp(prefix=_STALE_PREFIX, dir=workspace))
                try:
                    os.rename(root, stale / _DEMO_DIR)
                except FileNotFoundError:
                    pass
                shutil.rmtree(stale, ignore_errors=True)
        return load_demo(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
