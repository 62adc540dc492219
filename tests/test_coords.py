import pytest

from lora_core.data.coords import (
    as_int_point,
    convert_point,
    from_original,
    quantization_error,
    to_original,
    token_cell_error,
)
from lora_core.qwen.geometry import ImageSettings, geometry

SCREEN = geometry(1080, 2400, ImageSettings(max_dim=1024))  # resized 448×1024


def test_norm_scales():
    assert from_original(540, 1200, "norm1000", SCREEN) == (500, 500)
    assert from_original(1080, 2400, "norm999", SCREEN) == (999, 999)
    assert to_original(999, 999, "norm999", SCREEN) == (1080, 2400)
    assert to_original(500, 250, "norm1000", SCREEN) == (540, 600)


def test_abs_resized_uses_the_processor_size_not_the_pre_resize():
    x, y = from_original(1080, 2400, "abs-resized", SCREEN)
    assert (x, y) == pytest.approx((448, 1024))
    assert to_original(224, 512, "abs-resized", SCREEN) == pytest.approx((540, 1200))


@pytest.mark.parametrize("src", ["abs-original", "abs-resized", "norm1000", "norm999"])
@pytest.mark.parametrize("dst", ["abs-original", "abs-resized", "norm1000", "norm999"])
def test_round_trip(src, dst):
    x, y = convert_point(123.0, 456.0, "abs-original", src, SCREEN)
    there = convert_point(x, y, src, dst, SCREEN)
    back = convert_point(*there, dst, "abs-original", SCREEN)
    assert back == pytest.approx((123.0, 456.0))


def test_out_of_range_and_wrong_types_are_refused():
    with pytest.raises(ValueError, match="outside the norm1000 range"):
        to_original(1001, 5, "norm1000", SCREEN)
    with pytest.raises(ValueError, match="outside the abs-original range"):
        from_original(-1, 5, "norm999", SCREEN)
    with pytest.raises(ValueError, match="two numbers"):
        to_original("12", 5, "norm1000", SCREEN)
    with pytest.raises(ValueError, match="Unknown coordinate convention"):
        to_original(1, 1, "relative", SCREEN)


def test_rounding_for_export_is_clamped():
    assert as_int_point((999.6, -0.2), "norm999", SCREEN) == [999, 0]


def test_precision_figures():
    assert token_cell_error(SCREEN) == pytest.approx((1080 / 14 / 2, 2400 / 32 / 2))
    assert quantization_error("norm1000", SCREEN) == pytest.approx((0.54, 1.2))
