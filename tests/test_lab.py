"""The Resolution Lab's analysis and its handling of bad screenshots, without a browser."""
import numpy as np
import pytest
from PIL import Image

from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.data.images import ImageInputError, open_screenshot, read_image_size, safe_resolve
from lora_core.analysis.resolution import (
    NamedSetting,
    analyse,
    click_report,
    element_report,
    lab_settings,
    preset_settings,
    render_model_view,
    targets_under_one_cell,
    tokens_per_setting,
)
from lora_core.qwen.recipes import NativeRecipe
from tests.conftest import PEER_DATA
from tests.images import forged_png, plain_image, truncated_png

FIGURE = PEER_DATA / "mai-ui" / "screenshots" / "figure1.png"
PRESETS = {named.key: named for named in preset_settings(ImageSettings())}


def test_presets_give_the_real_token_counts():
    reports = analyse(1080, 2400, list(PRESETS.values()), max_length=6200)
    tokens = {r.setting.key: r.geometry.visual_tokens for r in reports}
    assert tokens == {"max520": 112, "max768": 264, "max1024": 448, "official": 434, "model": 2550}
    assert reports[2].share_of_max_length == pytest.approx(448 / 6200)


def test_presets_are_native_recipes_on_the_checkpoint_budget(encoder):
    """Each preset is a NamedSetting(key, label, recipe): the native recipe over the checkpoint's own settings."""
    presets = preset_settings(encoder.checkpoint_settings.with_(max_dim=700))  # a checkpoint max_dim is dropped
    assert all(isinstance(named, NamedSetting) and isinstance(named.recipe, NativeRecipe) for named in presets)
    by_key = {named.key: named for named in presets}
    assert by_key["max520"].recipe.options["max_dim"] == 520 and by_key["model"].settings.max_dim is None
    assert by_key["official"].settings.max_pixels == 28 * 28 * 576
    for named in presets:
        assert named.geometry(1080, 2400) == encoder.using(named.recipe).geometry(1080, 2400)
        assert named.geometry(1080, 2400) == geometry(1080, 2400, named.settings)


def test_element_verdicts_follow_the_seed_example():
    """Seed §4.3.3: at 520 a 40 px icon is lost, an 80 px icon is blurry; 200×80 buttons survive."""
    at_520 = PRESETS["max520"].geometry(1080, 2400)
    assert element_report(at_520, (0, 0, 40, 40)).verdict == "lost"
    assert element_report(at_520, (0, 0, 200, 200)).verdict == "blurry"
    at_1024 = PRESETS["max1024"].geometry(1080, 2400)
    assert element_report(at_1024, (0, 0, 200, 200)).verdict == "ok"
    report = element_report(at_1024, (10, 10, 110, 60))
    assert report.resized_width == pytest.approx(100 * 448 / 1080)
    assert report.cells_high == pytest.approx(50 * 1024 / 2400 / 32)


def test_text_readability_thresholds():
    at_520 = PRESETS["max520"].geometry(1080, 2400)  # scale ≈ 0.213
    at_full = PRESETS["model"].geometry(1080, 2400)
    assert element_report(at_full, (0, 0, 300, 48), text_height=48).text_verdict == "clear"
    assert element_report(at_520, (0, 0, 300, 60), text_height=60).text_verdict == "blurry"  # 12.8 px
    assert element_report(at_520, (0, 0, 300, 24), text_height=24).text_verdict == "unreadable"


def test_click_precision():
    geom = PRESETS["max520"].geometry(1080, 2400)
    report = click_report(geom, (0, 0))
    assert (report.cell_row, report.cell_col) == (0, 0)
    assert report.worst_error == pytest.approx((1080 / 7 / 2, 2400 / 16 / 2))
    assert report.centre_error == pytest.approx(((1080 / 14) ** 2 + (2400 / 32) ** 2) ** 0.5)
    corner = click_report(geom, (1080, 2400))
    assert (corner.cell_row, corner.cell_col) == (15, 6)


def test_model_view_has_the_processor_size_and_grids(encoder):
    image = open_screenshot(FIGURE)
    geom = encoder.with_options(max_dim=520).geometry(*image.size)
    model_view = encoder.model_view(image, geom)
    assert model_view.size == (224, 512) == (geom.resized_width, geom.resized_height)
    view = render_model_view(model_view, geom, display_height=1024, show_patches=False, show_tokens=True)
    assert view.height == 1024 and view.width == round(224 * 1024 / 512)
    # token grid lines every 32 resized px = 64 display px: column 64 is red-ish, column 96 is not a line
    pixel_on_line, pixel_between = view.getpixel((64, 300)), view.getpixel((96, 300))
    assert pixel_on_line != pixel_between
    assert isinstance(view, Image.Image)
    # without grids the display is the model view enlarged without smoothing: every model pixel is a 2×2 block
    plain = render_model_view(model_view, geom, display_height=1024, show_patches=False, show_tokens=False)
    assert np.array_equal(np.asarray(plain), np.asarray(model_view).repeat(2, axis=0).repeat(2, axis=1))


# --- the model view is the processor's own pixels ------------------------------------------------


def repatch(view: Image.Image, processor) -> np.ndarray:
    """Normalise a displayed model view and cut it into patches the way Qwen2-VL's processor lays them out:
    rows (t, h/m, w/m, m, m), columns (C, temporal, patch, patch)."""
    p, m, t = int(processor.patch_size), int(processor.merge_size), int(processor.temporal_patch_size)
    mean = np.asarray(processor.image_mean, dtype=np.float64).reshape(3, 1, 1)
    std = np.asarray(processor.image_std, dtype=np.float64).reshape(3, 1, 1)
    pixels = (np.asarray(view, dtype=np.float64).transpose(2, 0, 1) * float(processor.rescale_factor) - mean) / std
    _, height, width = pixels.shape
    gh, gw = height // p, width // p
    frames = np.repeat(pixels[None], t, axis=0)  # one image fills the temporal patch twice
    patches = frames.reshape(1, t, 3, gh // m, m, p, gw // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(gh * gw, 3 * t * p * p)


@pytest.fixture(scope="module")
def screenshots(workspace, tmp_path_factory):
    """A real demo screenshot and a random-noise PNG (every pixel differs from its neighbours)."""
    from demo import ensure_demo_data

    noise_path = tmp_path_factory.mktemp("noise") / "noise.png"
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (2532, 1170, 3), dtype=np.uint8), "RGB").save(noise_path)
    return {"demo": open_screenshot(ensure_demo_data(workspace).screen("files_root").path),
            "noise": open_screenshot(noise_path)}


@pytest.mark.parametrize("source", ["demo", "noise"])
@pytest.mark.parametrize("key", ["max768", "official", "llamafactory", "ms-swift"])
def test_the_model_view_is_the_processors_own_pixels(encoder, screenshots, source, key):
    """Re-normalised and re-patched, the Lab's model view gives back the processor's pixel_values within one grey
    level: the view shows exactly what the vision tower gets (pre-resize, pixel budget, the recipe's own sizing)."""
    image = screenshots[source]
    named = {named.key: named for named in lab_settings(encoder.checkpoint_settings)}[key]
    geom = named.geometry(*image.size)
    view = encoder.model_view(image, geom)
    assert view.mode == "RGB" and view.size == (geom.resized_width, geom.resized_height)
    values, grid = encoder.pixels(image, geom)
    assert [int(v) for v in grid[0]] == list(geom.grid_thw)
    expected = values.numpy().astype(np.float64)
    got = repatch(view, encoder.image_processor)
    assert got.shape == expected.shape
    processor = encoder.image_processor
    one_grey_level = float(processor.rescale_factor) / min(float(s) for s in processor.image_std)
    assert np.abs(got - expected).max() <= one_grey_level + 1e-6
    # the view is not the screenshot merely shrunk to the same size (the pre-resize and budget steps show)
    if source == "noise":
        naive = np.asarray(image.resize(view.size, Image.Resampling.NEAREST), dtype=np.float64)
        assert np.abs(np.asarray(view, dtype=np.float64) - naive).mean() > 5


def test_the_lab_draws_the_model_view(encoder, workspace):
    """render_lab's views are the encoder's model view, enlarged: not the uploaded screenshot. Each figure's
    PNG (the file its URL serves) is compared pixel by pixel."""
    import re
    from urllib.parse import unquote

    from ui.lab import demo_screenshot, render_lab, screenshot_image

    ctx = FixedContext(workspace, None, encoder)
    shot = demo_screenshot(ctx, "files_root")
    _, table, status, views = render_lab(ctx, shot, ["max520", "official"], False, None, None, None, 6200,
                                         False, False)
    assert "files_root" in status and 'data-setting="official"' in table
    sources = re.findall(r'<figure class="lab-view" id="lab-view-(\d+)" data-setting="([^"]+)">.*?<img src="([^"]+)"',
                         views)
    assert [(index, key) for index, key, _ in sources] == [("0", "max520"), ("1", "official")]
    for _, key, url in sources:
        picture = Image.open(unquote(url.split("file=", 1)[1].replace("&amp;", "&"))).convert("RGB")
        geom = PRESETS[key].geometry(shot.width, shot.height)
        zoom = picture.height / geom.resized_height
        smoothing = Image.Resampling.NEAREST if zoom >= 1 else Image.Resampling.BILINEAR
        expected = encoder.model_view(screenshot_image(shot), geom).resize(picture.size, smoothing)
        assert np.array_equal(np.asarray(picture), np.asarray(expected)), key
        assert not np.array_equal(np.asarray(picture), np.asarray(screenshot_image(shot).resize(picture.size))), key


def test_dataset_helpers():
    counts = tokens_per_setting([(1080, 2400), (720, 1600), (1, 500)], [PRESETS["max520"], PRESETS["model"]])
    assert counts["max520"] == [112, geometry(720, 1600, ImageSettings(max_dim=520)).visual_tokens]
    assert counts["model"] == [2550, 1100]  # the 1×500 image is refused (aspect ratio) and skipped
    targets = [("t1 step 1", "tiny", (1080, 2400), (0, 0, 40, 40)),
               ("t1 step 2", "big", (1080, 2400), (0, 0, 400, 400))]
    small = targets_under_one_cell(targets, PRESETS["max520"])
    assert [t.label for t in small] == ["tiny"]
    assert small[0].cells == pytest.approx(element_report(PRESETS["max520"].geometry(1080, 2400), (0, 0, 40, 40)).cells)
    assert targets_under_one_cell(targets, PRESETS["model"]) == []  # 40 px is 40 px at full size: over one cell


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

    def __init__(self, workspace, info, encoder=None):
        from demo import ensure_demo_data

        self.demo = ensure_demo_data(workspace)
        self.info = info
        self._encoder = encoder

    def model_info(self):
        return self.info

    def encoder(self):
        return self._encoder


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


def test_lab_report_names_a_refused_setting(tmp_path, workspace, embedded_info):
    """A screenshot the processor accepts can still be refused by one setting: its row says why."""
    from ui.lab import report_api

    lab_report = report_api(FixedContext(workspace, embedded_info))
    result = lab_report(str(plain_image(tmp_path / "thin.png", 3, 590)), ["max520", "max768", "model"])
    rows = {row["key"]: row for row in result["settings"]}
    assert "aspect ratio must be smaller than 200" in rows["max520"]["error"]  # 2×520 after the pre-resize
    assert rows["max768"]["visual_tokens"] == rows["model"]["visual_tokens"] == 113
