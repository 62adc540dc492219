from dataclasses import dataclass

import pytest

from lora_core.data.coords import (
    OriginalFrame,
    as_int_point,
    convert_point,
    from_original,
    quantization_error,
    to_original,
    token_cell_error,
)
from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes import NativeRecipe

SCREEN = NativeRecipe(ImageSettings(), max_dim=1024).geometry(1080, 2400)  # resized 448×1024


@dataclass(frozen=True)
class PlainFrame:
    """Not a Geometry: any object with the sizes and scales is a frame."""

    width: int
    height: int
    resized_width: int
    resized_height: int

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.height


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


def test_any_object_with_sizes_and_scales_is_a_frame():
    plain = PlainFrame(1080, 2400, 448, 1024)
    for space in ("abs-original", "abs-resized", "norm1000", "norm999"):
        assert from_original(123, 456, space, plain) == pytest.approx(from_original(123, 456, space, SCREEN))
        assert convert_point(10, 20, space, "abs-original", plain) == pytest.approx(
            convert_point(10, 20, space, "abs-original", SCREEN))
        assert quantization_error(space, plain) == pytest.approx(quantization_error(space, SCREEN))
    assert as_int_point((447.7, 1024.4), "abs-resized", plain) == [448, 1024]
    with pytest.raises(ValueError, match="outside the abs-resized range"):
        to_original(449, 5, "abs-resized", plain)


def test_the_original_frame_serves_every_space_but_abs_resized():
    frame = OriginalFrame(1080, 2400)
    assert from_original(540, 1200, "norm1000", frame) == (500, 500)
    assert to_original(999, 999, "norm999", frame) == (1080, 2400)
    assert convert_point(500, 250, "norm1000", "abs-original", frame) == (540, 600)
    assert quantization_error("norm1000", frame) == pytest.approx((0.54, 1.2))
    for call in (lambda: from_original(540, 1200, "abs-resized", frame),
                 lambda: to_original(10, 10, "abs-resized", frame),
                 lambda: quantization_error("abs-resized", frame)):
        with pytest.raises(ValueError, match="resized size; give the encoder's geometry"):
            call()


def test_the_encoders_geometry_is_a_frame(encoder):
    """The frame the trainer's images have: the encoder's geometry under its recipe."""
    frame = encoder.with_options(max_dim=1024).geometry(1080, 2400)
    assert frame == SCREEN
    assert from_original(1080, 2400, "abs-resized", frame) == pytest.approx((448, 1024))
