import pytest

from lora_core.qwen.geometry import ImageSettings, geometry, pre_resize
from lora_core.qwen.recipes import NativeRecipe
from tests.conftest import load_fixture

GEOMETRY_CASES = load_fixture("qwen3vl_geometry_public.json")


@pytest.mark.parametrize("case", GEOMETRY_CASES, ids=lambda c: f"{c['width']}x{c['height']}-{c['min_pixels']}-{c['max_pixels']}")
def test_geometry_equals_processor_fixture(case):
    settings = ImageSettings(min_pixels=case["min_pixels"], max_pixels=case["max_pixels"])
    recipe = NativeRecipe(ImageSettings(), min_pixels=case["min_pixels"], max_pixels=case["max_pixels"])
    assert recipe.image_settings == settings
    if "error" in case:
        for compute in (lambda: geometry(case["width"], case["height"], settings),
                        lambda: recipe.geometry(case["width"], case["height"])):
            with pytest.raises(ValueError) as raised:
                compute()
            assert str(raised.value) == case["message"]
        return
    result = geometry(case["width"], case["height"], settings)
    assert (result.resized_width, result.resized_height) == (case["resized_width"], case["resized_height"])
    assert list(result.grid_thw) == case["grid_thw"]
    assert result.visual_tokens == case["visual_tokens"]
    assert recipe.geometry(case["width"], case["height"]) == result  # the native recipe sizes with geometry()


def test_seed_table_is_corrected_at_1024():
    """The seed says ~928 tokens at max side 1024; the processor gives 448, four times the 520 case."""
    at_1024 = geometry(1080, 2400, ImageSettings(max_dim=1024))
    at_520 = geometry(1080, 2400, ImageSettings(max_dim=520))
    assert (at_1024.pre_width, at_1024.pre_height) == (460, 1024)
    assert (at_1024.resized_width, at_1024.resized_height, at_1024.visual_tokens) == (448, 1024, 448)
    assert (at_520.resized_width, at_520.resized_height, at_520.visual_tokens) == (224, 512, 112)


def test_official_finetuning_budget():
    result = geometry(1080, 2400, ImageSettings(max_pixels=28 * 28 * 576))
    assert (result.resized_width, result.resized_height, result.visual_tokens) == (448, 992, 434)


def test_pre_resize_never_upscales_and_keeps_aspect():
    assert pre_resize(300, 200, 1024) == (300, 200)
    assert pre_resize(2400, 1080, 520) == (520, 234)
    assert pre_resize(1000, 1000, None) == (1000, 1000)


def test_grids_cover_the_original_exactly():
    result = geometry(1080, 2400, ImageSettings(max_dim=1024))
    xs, ys = result.token_cell_edges
    assert len(xs) == result.token_grid[1] + 1 and len(ys) == result.token_grid[0] + 1
    assert xs[0] == 0 and xs[-1] == pytest.approx(1080) and ys[-1] == pytest.approx(2400)
    patch_xs, patch_ys = result.patch_edges
    assert len(patch_xs) == 2 * (len(xs) - 1) + 1
    cell_w, cell_h = result.token_cell_on_original
    assert cell_w == pytest.approx(1080 / 14) and cell_h == pytest.approx(2400 / 32)
    assert result.token_cell_box(1, 2) == pytest.approx((2 * cell_w, cell_h, 3 * cell_w, 2 * cell_h))


CASES = [(1080, 2400, 16_777_216, None), (694, 267, 16_777_216, None), (1080, 2400, 28 * 28 * 576, None),
         (1080, 2400, 16_777_216, 1024), (1, 180, 16_777_216, None)]


def test_geometry_matches_the_real_image_processor(embedded_path):
    """Run transformers' processor on real pixels for a few sizes and budgets."""
    from PIL import Image

    from lora_core.qwen.checkpoint import load_processor

    processor = load_processor(embedded_path)
    for width, height, max_pixels, max_dim in CASES:
        expected = geometry(width, height, ImageSettings(max_pixels=max_pixels, max_dim=max_dim))
        processor.image_processor.size = {"shortest_edge": 65_536, "longest_edge": max_pixels}
        image = Image.new("RGB", (expected.pre_width, expected.pre_height), "gray")  # max_dim: the seed's pre-resize
        out = processor.image_processor(images=[image], return_tensors="np")
        assert list(out["image_grid_thw"][0]) == list(expected.grid_thw)


def test_encoder_pixels_follow_its_geometry(encoder):
    """The encoder's geometry and its pixels (the checkpoint's processor, with the recipe's budget) agree."""
    from PIL import Image

    for width, height, max_pixels, max_dim in CASES:
        native = encoder.with_options(max_pixels=max_pixels, max_dim=max_dim)
        geom = native.geometry(width, height)
        assert geom == geometry(width, height, ImageSettings(max_pixels=max_pixels, max_dim=max_dim))
        values, grid = native.pixels(Image.new("RGB", (width, height), "gray"), geom)
        t, h, w = geom.grid_thw
        assert [int(v) for v in grid[0]] == [t, h, w]
        assert tuple(values.shape) == (t * h * w, 3 * 2 * 16 * 16)


def test_bad_settings_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="max_dim"):
        ImageSettings(max_dim=0)
    with pytest.raises(ValueError, match="min_pixels"):
        ImageSettings(min_pixels=10, max_pixels=5)
    with pytest.raises(ValueError, match="at least 1×1"):
        geometry(0, 10)
