"""The headless CLI, run as a real subprocess the way scripts call it."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PEER_DATA, ROOT, load_fixture


def run_cli(*args, workspace=None):
    command = [sys.executable, "-m", "lora_core", *args]
    if workspace is not None:
        command += ["--workspace", str(workspace)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_geometry_json():
    result = run_cli("geometry", "--width", "1080", "--height", "2400", "--max-dim", "1024", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["resized_width"], data["resized_height"], data["grid_thw"], data["visual_tokens"]) == (448, 1024, [1, 64, 28], 448)


def test_geometry_budget_options():
    result = run_cli("geometry", "--width", "1080", "--height", "2400", "--max-pixels", str(28 * 28 * 576),
                     "--min-pixels", "3136", "--json")
    assert json.loads(result.stdout)["visual_tokens"] == 434


@pytest.mark.parametrize("args, message", [
    (["geometry", "--width", "1", "--height", "250", "--json"], "aspect ratio must be smaller than 200"),
    (["geometry", "--width", "abc", "--height", "10", "--json"], "expected a whole number"),
    (["geometry", "--width", "-5", "--height", "10", "--json"], "expected a positive number"),
    (["geometry", "--width", "10", "--json"], "required: --height"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_are_one_line_on_stderr(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    """A fixture conversation whose image item points at a real MAI-UI screenshot beside the sample."""
    folder = tmp_path_factory.mktemp("sample")
    shutil.copy(PEER_DATA / "mai-ui" / "screenshots" / "figure1.png", folder / "screen.png")
    conv = load_fixture("qwen3vl_masks_public.json")[0]
    messages = json.loads(json.dumps(conv["messages"]))
    for message in messages:
        if isinstance(message["content"], list):
            for item in message["content"]:
                if item["type"] == "image":
                    item["image"] = "screen.png"
    (folder / "sample.json").write_text(json.dumps({"messages": messages}, ensure_ascii=False))
    return folder


def test_mask_json(sample_dir, workspace, embedded_path):
    result = run_cli("mask", str(sample_dir / "sample.json"), "--mode", "all", "--max-dim", "1024", "--json",
                     workspace=workspace)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["input_ids"].count(151655) == 448
    assert len(data["labels"]) == len(data["input_ids"])
    assert data["trained_tokens"] == sum(1 for label in data["labels"] if label != -100) == 104
    assert data["images"][0]["visual_tokens"] == 448


def test_mask_matches_the_fixture_ids_when_the_image_has_the_fixture_size(tmp_path, workspace, embedded_path):
    from PIL import Image

    conv = load_fixture("qwen3vl_masks_public.json")[0]
    width, height = conv["image_sizes"][0]
    Image.new("RGB", (width, height), "white").save(tmp_path / "img.png")
    messages = json.loads(json.dumps(conv["messages"]))
    messages[3]["content"][0]["image"] = "img.png"
    (tmp_path / "s.json").write_text(json.dumps({"messages": messages}, ensure_ascii=False))
    data = json.loads(run_cli("mask", str(tmp_path / "s.json"), "--json", workspace=workspace).stdout)
    assert data["input_ids"] == conv["input_ids"]
    assert data["labels"] == conv["labels_last"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"messages": []}', "no non-empty 'messages'"),
    ('{"messages": [{"role": "user", "content": [{"type": "image", "image": "../escape.png"}]}]}', "outside"),
    ('{"messages": [{"role": "user", "content": [{"type": "image", "image": "missing.png"}]}]}', "does not exist"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role must be one of"),
])
def test_mask_bad_input(tmp_path, workspace, embedded_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    result = run_cli("mask", str(tmp_path / "bad.json"), "--json", workspace=workspace)
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_mask_corrupt_image(tmp_path, workspace, embedded_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "s.json").write_text(json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "broken.png"}]}]}))
    result = run_cli("mask", str(tmp_path / "s.json"), "--json", workspace=workspace)
    assert result.returncode != 0 and "not a readable image" in result.stderr
