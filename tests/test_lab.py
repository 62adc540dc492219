"""The Resolution Lab's analysis and its handling of bad screenshots, without a browser."""
import pytest

from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.data.images import ImageInputError, open_screenshot, read_image_size, safe_resolve
from lora_core.analysis.resolution import (
    analyse,
    click_report,
    element_report,
    preset_settings,
    render_model_view,
    targets_under_one_cell,
    tokens_per_setting,
)
from tests.conftest import PEER_DATA
from tests.images import forged_png, plain_image, truncated_png

FIGURE = PEER_DATA / "mai-ui" / "screenshots" / "figure1.png"
PRESETS = {named.key: named for named in preset_settings(ImageSettings())}


def test_presets_give_the_real_token_counts():
    reports = analyse(1080, 2400, list(PRESETS.values()), max_length=6200)
    tokens = {r.setting.key: r.geometry.visual_tokens for r in reports}
    assert tokens == {"max520": 112, "max768": 264, "max1024": 448, "official": 434, "model": 2550}
    assert reports[2].share_of_max_length == pytest.approx(448 / 6200)


def test_element_verdicts_follow_the_seed_example():
    """Seed §4.3.3: at 520 a 40 px icon is lost, an 80 px icon is blurry; 200×80 buttons survive."""
    at_520 = geometry(1080, 2400, ImageSettings(max_dim=520))
    assert element_report(at_520, (0, 0, 40, 40)).verdict == "lost"
    assert element_report(at_520, (0, 0, 200, 200)).verdict == "blurry"
    at_1024 = geometry(1080, 2400, ImageSettings(max_dim=1024))
    assert element_report(at_1024, (0, 0, 200, 200)).verdict == "ok"
    report = element_report(at_1024, (10, 10, 110, 60))
    assert report.resized_width == pytest.approx(100 * 448 / 1080)
    assert report.cells_high == pytest.approx(50 * 1024 / 2400 / 32)


def test_text_readability_thresholds():
    at_520 = geometry(1080, 2400, ImageSettings(max_dim=520))  # scale ≈ 0.213
    at_full = geometry(1080, 2400)
    assert element_report(at_full, (0, 0, 300, 48), text_height=48).text_verdict == "clear"
    assert element_report(at_520, (0, 0, 300, 60), text_height=60).text_verdict == "blurry"  # 12.8 px
    assert element_report(at_520, (0, 0, 300, 24), text_height=24).text_verdict == "unreadable"


def test_click_precision():
    geom = geometry(1080, 2400, ImageSettings(max_dim=520))
    report = click_report(geom, (0, 0))
    assert (report.cell_row, report.cell_col) == (0, 0)
    assert report.worst_error == pytest.approx((1080 / 7 / 2, 2400 / 16 / 2))
    assert report.centre_error == pytest.approx(((1080 / 14) ** 2 + (2400 / 32) ** 2) ** 0.5)
    corner = click_report(geom, (1080, 2400))
    assert (corner.cell_row, corner.cell_col) == (15, 6)


def test_model_view_has_the_processor_size_and_grids():
    from PIL import Image

    image = open_screenshot(FIGURE)
    geom = geometry(*image.size, ImageSettings(max_dim=520))
    view = render_model_view(image, geom, display_height=1024, show_patches=False, show_tokens=True)
    assert view.height == 1024 and view.width == round(224 * 1024 / 512)
    # token grid lines every 32 resized px = 64 display px: column 64 is red-ish, column 96 is not a line
    pixel_on_line, pixel_between = view.getpixel((64, 300)), view.getpixel((96, 300))
    assert pixel_on_line != pixel_between
    assert isinstance(view, Image.Image)


def test_dataset_helpers():
    counts = tokens_per_setting([(1080, 2400), (720, 1600), (1, 500)], [PRESETS["max520"], PRESETS["model"]])
    assert counts["max520"] == [112, geometry(720, 1600, ImageSettings(max_dim=520)).visual_tokens]
    assert counts["model"] == [2550, 1100]  # the 1×500 image is refused (aspect ratio) and skipped
    small = targets_under_one_cell(
        [("t1 step 1", "tiny", (1080, 2400), (0, 0, 40, 40)), ("t1 step 2", "big", (1080, 2400), (0, 0, 400, 400))],
        ImageSettings(max_dim=520))
    assert [t.label for t in small] == ["tiny"]


# --- bad input --------------------------------------------------------------------------------


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageInputError, match="not a readable image"):
        open_screenshot(tmp_path / "notes.png")


def test_truncated_png(tmp_path):
    broken = truncated_png(tmp_path / "broken.png", FIGURE)
    assert read_image_size(broken) == (1080, 2400)  # the header still reads
    with pytest.raises(ImageInputError, match="damaged"):
        open_screenshot(broken)


@pytest.mark.parametrize("size", [(50_000, 50_000), (8_000, 8_000)])
def test_pixel_bomb(tmp_path, size):
    bomb = forged_png(tmp_path / "bomb.png", *size)
    with pytest.raises(ImageInputError, match="megapixel|decompression bomb"):
        open_screenshot(bomb)


def test_huge_file(tmp_path, monkeypatch):
    from lora_core.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ImageInputError, match="refused"):
        open_screenshot(plain_image(tmp_path / "big.png", 400, 400).with_suffix(".png"))


def test_upload_checks_in_the_lab(tmp_path):
    from ui.lab import uploaded_screenshot

    with pytest.raises(ImageInputError, match="aspect ratio 250:1"):
        uploaded_screenshot(str(plain_image(tmp_path / "strip.png", 2, 500)), ImageSettings())
    shot, notes = uploaded_screenshot(str(plain_image(tmp_path / "dot.png", 1, 1)), ImageSettings())
    assert (shot.width, shot.height) == (1, 1)
    assert "upscaled to 256×256" in notes[0]
    shot, notes = uploaded_screenshot(str(FIGURE), ImageSettings())
    assert (shot.width, shot.height, notes) == (1080, 2400, [])


def test_paths_cannot_escape(tmp_path):
    (tmp_path / "inside.png").write_bytes(b"")
    assert safe_resolve(tmp_path, "inside.png") == (tmp_path / "inside.png").resolve()
    for escape in ("../outside.png", "/etc/passwd", "a/../../outside.png"):
        with pytest.raises(ImageInputError, match="outside"):
            safe_resolve(tmp_path, escape)


class FixedContext:
    """The parts of AppContext the Lab's dataset view reads, without starting the app."""

    def __init__(self, workspace, info):
        from demo import ensure_demo_data

        self.demo = ensure_demo_data(workspace)
        self.info = info

    def model_info(self):
        return self.info


def test_dataset_view_over_the_demo_trajectories(workspace, embedded_info):
    from ui.lab import analyse_dataset

    ctx = FixedContext(workspace, embedded_info)
    figure, summary = analyse_dataset(ctx, None, "max520")
    steps = sum(len(t.steps) for t in ctx.demo.trajectories)
    assert f"{steps} image(s)" in summary
    targets = [s.target for t in ctx.demo.trajectories for s in t.steps if s.target is not None]
    small = [t for t in targets if (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]) * (224 / 1080) * (512 / 2400) < 32 * 32]
    assert f"{len(small)} of {len(targets)} click targets" in summary
    assert figure is not None


def test_dataset_view_skips_bad_files(tmp_path, workspace, embedded_info):
    from ui.lab import analyse_dataset

    ctx = FixedContext(workspace, embedded_info)
    (tmp_path / "junk.png").write_text("junk")
    _, summary = analyse_dataset(ctx, [str(FIGURE), str(tmp_path / "junk.png")], "max520")
    assert "1 image(s)" in summary and "Skipped" in summary and "junk.png" in summary


def test_image_reference_must_be_a_string(tmp_path):
    with pytest.raises(ImageInputError, match="must be a path string"):
        safe_resolve(tmp_path, 42)


def test_errors_do_not_show_the_server_folder(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageInputError) as raised:
        open_screenshot(tmp_path / "notes.png")
    assert "notes.png" in str(raised.value) and str(tmp_path) not in str(raised.value)
