"""The headless CLI, run as a real subprocess the way scripts call it."""
import json
import shutil
import subprocess
import sys

import pytest

from lora_core.qwen.recipes import RECIPES, NativeRecipe
from tests.conftest import PEER_DATA, ROOT, load_fixture

NATIVE_DEFAULTS = {spec.name: spec.default for spec in NativeRecipe.option_specs}


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


@pytest.fixture(scope="module")
def mask_all_1024(sample_dir, workspace, embedded_path):
    """`mask --mode all --max-dim 1024` of the sample: every answer trained, no token limit."""
    result = run_cli("mask", str(sample_dir / "sample.json"), "--mode", "all", "--max-dim", "1024", "--json",
                     workspace=workspace)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_mask_json(mask_all_1024, special):
    data = mask_all_1024
    assert data["input_ids"].count(special.image_pad) == 448
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
    assert (data["recipe"], data["options"], data["mode"]) == ("native", NATIVE_DEFAULTS, "last")
    # the old flag and the recipe option give the fixture's "all" labels
    for flags in (["--mode", "all"], ["--recipe", "native", "--option", "mode=all"]):
        result = run_cli("mask", str(tmp_path / "s.json"), *flags, "--json", workspace=workspace)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["input_ids"] == conv["input_ids"] and data["labels"] == conv["labels_all"], flags



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

def test_native_flags_and_options_give_the_same_ids(sample_dir, workspace, mask_all_1024):
    """The default recipe is native; its old flags still work and mean exactly its --option KEY=VALUE."""
    sample = str(sample_dir / "sample.json")
    limit = 520  # inside the answer: 448 image pads and the prompt come first
    outputs = []
    for flags in (["--mode", "all", "--max-dim", "1024", "--max-length", str(limit)],
                  ["--recipe", "native", "--option", "mode=all", "--option", "max_dim=1024",
                   "--option", f"max_length={limit}"],
                  ["--mode", "all", "--option", "max_dim=1024", "--max-length", str(limit)]):
        result = run_cli("mask", sample, *flags, "--json", workspace=workspace)
        assert result.returncode == 0, (flags, result.stderr)
        outputs.append(json.loads(result.stdout))
    first = outputs[0]
    assert first["recipe"] == "native"
    assert first["options"] == {**NATIVE_DEFAULTS, "mode": "all", "max_dim": 1024, "max_length": limit}
    assert first["max_length"] == limit and len(first["input_ids"]) == limit and first["truncated"]
    for other in outputs[1:]:
        assert other == first
    # the same ids as without a limit, cut at it (native cuts first, then labels)
    assert first["full_input_ids"] == mask_all_1024["input_ids"] and not mask_all_1024["truncated"]
    assert first["input_ids"] == mask_all_1024["input_ids"][:limit]
    full_labels = mask_all_1024["labels"]
    assert len(first["labels"]) == limit
    assert all(label in (-100, full_labels[i]) for i, label in enumerate(first["labels"]))  # never a new label
    assert first["trained_tokens"] < mask_all_1024["trained_tokens"]


def assert_usage_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", ["geometry", "mask"])
def test_unknown_recipe_names_the_recipes(command, sample_dir, workspace):
    args = ["--width", "1080", "--height", "2400"] if command == "geometry" else [str(sample_dir / "sample.json")]
    line = assert_usage_error(run_cli(command, *args, "--recipe", "bogus", "--json", workspace=workspace),
                              "bogus", *RECIPES)
    for name in ("native", "llamafactory", "ms-swift"):
        if name in RECIPES:
            assert name in line
    if not {"llamafactory", "ms-swift"} <= set(RECIPES):
        pytest.skip(f"only {', '.join(RECIPES)} registered so far; the line names those")


@pytest.mark.parametrize("command", ["geometry", "mask"])
def test_unknown_option_names_the_valid_ones(command, sample_dir, workspace, embedded_path):
    args = ["--width", "1080", "--height", "2400"] if command == "geometry" else [str(sample_dir / "sample.json")]
    assert_usage_error(run_cli(command, *args, "--option", "nokey=1", "--json", workspace=workspace),
                       "nokey", *NATIVE_DEFAULTS)
    if command == "geometry":
        assert_usage_error(run_cli(command, *args, "--option", "max_dim=big", "--json"),
                           "max_dim", "positive whole number")
        assert_usage_error(run_cli(command, *args, "--option", "max_dim", "--json"), "KEY=VALUE")


def test_native_flags_under_another_recipe_name_its_own_option(sample_dir, workspace):
    if "llamafactory" not in RECIPES:
        pytest.skip("the llamafactory recipe is not registered yet")
    sample = str(sample_dir / "sample.json")
    assert_usage_error(run_cli("mask", sample, "--recipe", "llamafactory", "--max-length", "2048", "--json",
                               workspace=workspace), "--max-length", "cutoff_len")
    assert_usage_error(run_cli("geometry", "--width", "1080", "--height", "2400", "--recipe", "llamafactory",
                               "--max-pixels", "1000000", "--json"),
                       "--max-pixels", RECIPES["llamafactory"].native_equivalent("max_pixels") or "no such option")


def test_geometry_names_its_recipe_and_options():
    result = run_cli("geometry", "--width", "1080", "--height", "2400", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("recipe", "options", "visual_tokens", "resized_width", "resized_height", "pre_resized_width",
                "pre_resized_height"):
        assert key in data, key
    assert (data["recipe"], data["options"]) == ("native", NATIVE_DEFAULTS)
    assert (data["pre_resized_width"], data["pre_resized_height"]) == (1080, 2400)
    assert (data["resized_width"], data["resized_height"], data["visual_tokens"]) == (1088, 2400, 2550)
    shrunk = json.loads(run_cli("geometry", "--width", "1080", "--height", "2400", "--option", "max_dim=1024",
                                "--json").stdout)
    assert (shrunk["pre_resized_width"], shrunk["pre_resized_height"], shrunk["visual_tokens"]) == (460, 1024, 448)
    assert shrunk["options"] == {**NATIVE_DEFAULTS, "max_dim": 1024}
