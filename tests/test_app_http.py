"""The app boots with `python app.py` and answers over HTTP, through gradio_client."""
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import PEER_DATA, ROOT
from tests.images import forged_png, plain_image, truncated_png

FIGURE = PEER_DATA / "mai-ui" / "screenshots" / "figure1.png"


def text_file(path):
    path.write_text("not an image")
    return path


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


def report(client, path, presets=("max520", "max1024"), max_length=6200):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), list(presets), max_length, api_name="/lab_report")


def test_front_page(app_server):
    with urllib.request.urlopen(app_server.url, timeout=10) as response:
        assert response.status == 200
        assert "Qwen3-VL LoRA workbench" in response.read().decode()


def test_lab_report_over_http(client):
    result = report(client, FIGURE, ("max520", "max1024", "official", "model"))
    assert (result["width"], result["height"]) == (1080, 2400)
    tokens = {row["key"]: row["visual_tokens"] for row in result["settings"]}
    assert tokens == {"max520": 112, "max1024": 448, "official": 434, "model": 2550}
    assert result["settings"][1]["share_of_max_length"] == pytest.approx(448 / 6200)


def test_lab_report_has_the_peer_recipes_at_their_defaults(client):
    """The llamafactory and ms-swift columns size the image by each recipe's own rule, as the recipe computes it."""
    from lora_core.analysis.resolution import lab_settings
    from lora_core.qwen.geometry import ImageSettings

    peers = [named for named in lab_settings(ImageSettings()) if named.key in ("llamafactory", "ms-swift")]
    if not peers:
        pytest.skip("no peer recipe in the Lab's settings yet")
    result = report(client, FIGURE, [named.key for named in peers])
    for row, named in zip(result["settings"], peers):
        geom = named.geometry(1080, 2400)
        assert row["key"] == named.key
        assert (row["resized_width"], row["resized_height"], row["visual_tokens"]) == (
            geom.resized_width, geom.resized_height, geom.visual_tokens)
        assert (row["pre_resized_width"], row["pre_resized_height"]) == (geom.pre_width, geom.pre_height)


def test_unknown_preset_is_refused_with_the_known_ones(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Unknown preset.*max520.*official"):
        report(client, FIGURE, ("max9000",))


@pytest.mark.parametrize("make, message", [
    (lambda d: text_file(d / "notes.png"), "not a readable image"),
    (lambda d: truncated_png(d / "cut.png", FIGURE), "damaged"),
    (lambda d: forged_png(d / "bomb.png", 50_000, 50_000), "decompression bomb"),
    (lambda d: plain_image(d / "strip.png", 2, 500), "aspect ratio 250:1"),
])
def test_bad_screenshots_get_a_sentence_and_the_app_keeps_working(client, tmp_path, make, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        report(client, make(tmp_path))
    assert report(client, FIGURE)["settings"][0]["visual_tokens"] == 112


def test_a_setting_that_refuses_the_image_says_why(client, tmp_path):
    """3×590 is accepted (aspect 197:1), but max520 pre-resizes it to 2×520 (260:1), which the processor refuses."""
    result = report(client, plain_image(tmp_path / "thin.png", 3, 590), ("max520", "model"))
    refused, kept = result["settings"]
    assert refused["key"] == "max520" and "aspect ratio" in refused["error"] and "visual_tokens" not in refused
    assert kept["key"] == "model" and kept["visual_tokens"] == 113 and "error" not in kept


def test_tiny_image_is_accepted_with_a_note(client, tmp_path):
    result = report(client, plain_image(tmp_path / "dot.png", 1, 1), ("model",))
    assert result["settings"][0]["resized_width"] == 256
    assert "upscaled" in result["notes"][0]


def test_help_lists_the_options():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in ("--host", "--port", "--workspace", "--model", "--auth", "--share"):
        assert option in out.stdout


def test_bad_auth_argument_is_refused():
    out = subprocess.run([sys.executable, "app.py", "--auth", "nopassword"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "USER:PASSWORD" in out.stderr
