"""Behavioural tests for the demo package (synthetic cloud-drive screenshots and trajectories)."""

import difflib
import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo import DEMO_VERSION, DemoData, build, ensure_demo_data

WIDTH, HEIGHT = 1080, 2400
KINDS = {"status_bar", "header", "row", "icon", "text", "button", "tab", "text_field", "app_icon",
         "keyboard", "dialog"}
ACTIONS = {"click", "long_press", "type", "swipe", "open", "system_button", "wait", "terminate"}
POINTED = {"click", "long_press"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoData:
    return ensure_demo_data(tmp_path_factory.mktemp("workspace"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def _json(demo: DemoData, name: str):
    return json.loads((demo.root / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- files and determinism


def test_layout_on_disk(demo):
    assert demo.root.name == "demo"
    assert _json(demo, "manifest.json") == {"version": DEMO_VERSION}
    for name in ("screens.json", "trajectories.json"):
        assert (demo.root / name).is_file()
    # nothing but the finished folder is left in the workspace
    assert [p.name for p in demo.root.parent.iterdir()] == ["demo"]
    for item in _json(demo, "screens.json"):
        assert item["image"] == f"screens/{item['name']}.png"
        assert (demo.root / item["image"]).is_file()


def test_two_generations_give_identical_bytes(demo, tmp_path):
    again = ensure_demo_data(tmp_path / "other")
    first, second = _all_files(demo.root), _all_files(again.root)
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".png") for name in first)
    for name in first:
        assert first[name] == second[name], f"{name} differs between two generations"


def test_every_screenshot_decodes_at_phone_size(demo):
    assert 8 <= len(demo.screens) <= 12
    assert len({s.name for s in demo.screens}) == len(demo.screens)
    for screen in demo.screens:
        with Image.open(screen.path) as image:
            image.load()
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (WIDTH, HEIGHT) == (screen.width, screen.height)


# ---------------------------------------------------------------- elements


def test_elements_are_inside_non_empty_and_uniquely_labelled(demo):
    for item in _json(demo, "screens.json"):
        labels = [e["label"] for e in item["elements"]]
        assert len(labels) == len(set(labels)), f"duplicate labels on {item['name']}"
    for screen in demo.screens:
        assert len(screen.elements) >= 10
        for e in screen.elements:
            x0, y0, x1, y1 = e.box
            assert 0 <= x0 < x1 <= screen.width and 0 <= y0 < y1 <= screen.height, (screen.name, e)
            assert e.kind in KINDS, (screen.name, e)
            assert e.label.strip() and e.label.isascii()
            assert screen.element(e.label) == e


def test_every_screen_has_a_status_bar_and_the_app_has_the_expected_parts(demo):
    kinds_seen = set()
    for screen in demo.screens:
        kinds = {e.kind for e in screen.elements}
        assert "status_bar" in kinds, screen.name
        kinds_seen |= kinds
    assert kinds_seen == KINDS
    home = [s for s in demo.screens if any(e.label == "app icon: CloudDrive" for e in s.elements)]
    assert home, "no home screen with the CloudDrive app icon"
    buttons = {e.label for s in demo.screens for e in s.elements if e.kind == "button"}
    assert {"button: Upload", "button: New folder", "button: Share", "button: Confirm"} <= buttons
    tabs = {e.label for s in demo.screens for e in s.elements if e.kind == "tab"}
    assert tabs == {"tab: Files", "tab: Recent", "tab: Shared", "tab: Me"}


def test_folder_icons_span_40_to_200_pixels(demo):
    sizes = set()
    for screen in demo.screens:
        for e in screen.elements:
            if e.label.startswith("folder icon:"):
                width, height = e.box[2] - e.box[0], e.box[3] - e.box[1]
                assert width == height, f"{e.label} is not square"
                assert e.kind == "icon"
                sizes.add(width)
    assert min(sizes) <= 40 and max(sizes) >= 200
    assert any(70 <= s <= 90 for s in sizes) and any(110 <= s <= 130 for s in sizes)


def test_text_heights_span_10_to_48_pixels(demo):
    heights = set()
    for screen in demo.screens:
        for e in screen.elements:
            if e.kind == "text":
                assert isinstance(e.text_height, int) and e.text_height > 0, e
                heights.add(e.text_height)
            elif e.kind not in ("button", "tab"):
                assert e.text_height is None, e
    assert min(heights) <= 10 and max(heights) >= 48
    assert {10, 12, 16, 24, 32, 48} <= heights


def test_text_boxes_are_the_ink_boxes_of_the_drawn_text(demo):
    margin = 3
    for screen in demo.screens:
        pixels = np.asarray(Image.open(screen.path).convert("RGB")).astype(int)
        for e in screen.elements:
            if e.kind != "text":
                continue
            x0, y0, x1, y1 = e.box
            region = pixels[y0 - margin:y1 + margin, x0 - margin:x1 + margin]
            ring = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
            background = np.median(ring, axis=0)
            assert np.abs(ring - background).max() <= 8, f"{screen.name}: {e.label} has ink outside its box"
            ink = np.abs(region - background).max(axis=2) > 40
            rows, cols = np.nonzero(ink)
            assert rows.size, f"{screen.name}: {e.label} box holds no text"
            # strong ink reaches (almost) every edge of the recorded box
            assert rows.min() - margin <= 2 and (y1 - y0) - (rows.max() - margin + 1) <= 2, (screen.name, e)
            assert cols.min() - margin <= 2 and (x1 - x0) - (cols.max() - margin + 1) <= 2, (screen.name, e)


# ---------------------------------------------------------------- trajectories


def test_trajectory_shape_and_action_vocabulary(demo):
    assert 4 <= len(demo.trajectories) <= 6
    assert len({t.id for t in demo.trajectories}) == len(demo.trajectories)
    used = set()
    for trajectory in demo.trajectories:
        assert trajectory.app == "CloudDrive" and trajectory.task
        assert 3 <= len(trajectory.steps) <= 8, trajectory.id
        assert trajectory.steps[-1].action == {"action": "terminate", "status": "success"}
        for step in trajectory.steps[:-1]:
            assert step.action["action"] != "terminate"
        for step in trajectory.steps:
            used.add(step.action["action"])
    assert used <= ACTIONS
    assert {"click", "long_press", "type", "open", "terminate"} <= used
    counts = [step.action["action"] for t in demo.trajectories for step in t.steps]
    assert counts.count("click") > len(counts) / 3


def test_point_actions_hit_the_centre_of_a_real_element(demo):
    for trajectory in demo.trajectories:
        for step in trajectory.steps:
            screen = demo.screen(step.screenshot)
            action = step.action
            if action["action"] in POINTED:
                assert step.target is not None
                x, y = action["coordinate"]
                assert type(x) is int and type(y) is int
                x0, y0, x1, y1 = step.target.box
                assert x0 <= x < x1 and y0 <= y < y1
                assert abs(x - (x0 + x1) / 2) <= 1 and abs(y - (y0 + y1) / 2) <= 1
                assert screen.element(step.target.label) == step.target
            else:
                assert step.target is None, (trajectory.id, action)
                if "coordinate" in action:
                    x, y = action["coordinate"]
                    assert 0 <= x < screen.width and 0 <= y < screen.height
            if action["action"] in ("type", "open"):
                assert action["text"].strip()


def test_trajectory_json_matches_screens(demo):
    names = {item["name"] for item in _json(demo, "screens.json")}
    raw = _json(demo, "trajectories.json")
    assert [t["id"] for t in raw] == [t.id for t in demo.trajectories]
    for trajectory in raw:
        assert set(trajectory) == {"id", "task", "app", "steps"}
        for step in trajectory["steps"]:
            assert step["screenshot"] in names
            assert step["image"] == f"screens/{step['screenshot']}.png"
            assert (demo.root / step["image"]).is_file()
            assert (step["width"], step["height"]) == (WIDTH, HEIGHT)
            if step["target"] is not None:
                assert set(step["target"]) >= {"label", "kind", "box"}


def test_thinking_is_specific_not_a_placeholder(demo):
    placeholder = "i will click the button."
    seen = set()
    for trajectory in demo.trajectories:
        for step in trajectory.steps:
            text = step.thinking.strip()
            lowered = text.lower()
            assert difflib.SequenceMatcher(None, lowered, placeholder).ratio() < 0.5, text
            assert "click the button" not in lowered
            assert len(re.findall(r"[.!?](\s|$)", text)) >= 2, f"not two sentences: {text}"
            assert len(text) >= 80
            assert text not in seen, f"thinking repeated: {text}"
            seen.add(text)


def test_lookup_errors_name_the_missing_item(demo):
    with pytest.raises(KeyError, match="no-such-screen"):
        demo.screen("no-such-screen")
    with pytest.raises(KeyError, match="button: Teleport"):
        demo.screens[0].element("button: Teleport")


# ---------------------------------------------------------------- caching and regeneration


def test_second_call_reads_without_rewriting(demo, monkeypatch):
    before = _mtimes(demo.root)

    def no_drawing(root):
        raise AssertionError("the demo data was generated again although it was complete")

    monkeypatch.setattr(build, "generate", no_drawing)
    again = ensure_demo_data(demo.root.parent)
    assert _mtimes(demo.root) == before
    assert again == demo


@pytest.mark.parametrize("damage", ["garbage_manifest", "missing_manifest", "old_version", "missing_png",
                                    "broken_screens_json"])
def test_damaged_folder_is_regenerated(demo, tmp_path, damage):
    root = tmp_path / "demo"
    shutil.copytree(demo.root, root)
    if damage == "garbage_manifest":
        (root / "manifest.json").write_text("{not json")
    elif damage == "missing_manifest":
        (root / "manifest.json").unlink()
    elif damage == "old_version":
        (root / "manifest.json").write_text(json.dumps({"version": DEMO_VERSION - 1}))
    elif damage == "missing_png":
        next((root / "screens").glob("*.png")).unlink()
    else:
        (root / "screens.json").write_text("[{]")
    rebuilt = ensure_demo_data(tmp_path)
    assert _all_files(rebuilt.root) == _all_files(demo.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_concurrent_first_use_yields_one_complete_folder(demo, tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(ensure_demo_data, [tmp_path, tmp_path]))
    assert results[0] == results[1]
    assert _all_files(tmp_path / "demo") == _all_files(demo.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
