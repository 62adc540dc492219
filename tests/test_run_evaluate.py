"""Evaluation scoring: parse each answer, convert its point to original pixels, compare with the truth."""
import pytest

from lora_core.data.agent import format_answer
from lora_core.data.samples import Sample
from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.training.evaluate import Truth, draw_predictions, ground_truth, score, summarize

GEOM = geometry(1080, 2400, ImageSettings(max_dim=520))
BOX = [100, 400, 300, 520]  # abs-original, target element


def click_truth(box=BOX, point=(200.0, 460.0)):
    return Truth({"action": "click", "coordinate": [185, 192]}, "click", point, box, (1080, 2400), "norm1000")


def answer(action):
    return format_answer("The Sales row is the first folder; I tap it.", action)


def test_click_inside_the_box_is_a_hit_with_its_pixel_error():
    row = score(answer({"action": "click", "coordinate": [185, 190]}), click_truth(), GEOM, 0.05)
    assert row["valid"] and row["action_match"] and row["hit"] and row["hit_rule"] == "inside target box"
    assert row["pred_point"] == pytest.approx([199.8, 456.0])
    assert row["error_px"] == pytest.approx(((200 - 199.8) ** 2 + 4 ** 2) ** 0.5)


def test_click_outside_the_box_misses_even_when_close():
    row = score(answer({"action": "click", "coordinate": [290, 190]}), click_truth(), GEOM, 0.05)
    assert row["valid"] and not row["hit"] and row["error_px"] > 100


def test_without_a_box_the_radius_decides():
    near = score(answer({"action": "click", "coordinate": [200, 195]}), click_truth(box=None), GEOM, 0.05)
    far = score(answer({"action": "click", "coordinate": [400, 195]}), click_truth(box=None), GEOM, 0.05)
    assert near["hit"] and near["hit_rule"] == "within 54 px" and not far["hit"]


def test_wrong_type_and_invalid_format():
    typed = score(answer({"action": "type", "text": "sales"}), click_truth(), GEOM, 0.05)
    assert typed["valid"] and not typed["action_match"] and typed["hit"] is False and typed["error_px"] is None
    garbage = score("！\",！\",", click_truth(), GEOM, 0.05)
    assert not garbage["valid"] and not garbage["action_match"] and garbage["hit"] is False
    outside = score(answer({"action": "click", "coordinate": [1500, 10]}), click_truth(), GEOM, 0.05)
    assert outside["valid"] and outside["pred_point"] is None and "outside" in outside["problems"][-1]


def test_summary_rates():
    rows = [score(answer({"action": "click", "coordinate": [185, 190]}), click_truth(), GEOM, 0.05),
            score(answer({"action": "click", "coordinate": [290, 190]}), click_truth(), GEOM, 0.05),
            score("nonsense", click_truth(), GEOM, 0.05),
            score(answer({"action": "terminate", "status": "success"}),
                  Truth({"action": "terminate", "status": "success"}, "terminate", None, None, (1080, 2400),
                        "norm1000"), GEOM, 0.05)]
    metrics = summarize(rows, eval_loss=1.25)
    assert metrics["samples"] == 4 and metrics["format_valid_rate"] == 0.75
    assert metrics["action_type_accuracy"] == 0.75
    assert metrics["click_samples"] == 3 and metrics["click_hit_rate"] == pytest.approx(1 / 3)
    assert metrics["coordinate_error_samples"] == 2 and metrics["eval_loss"] == 1.25
    assert summarize([], None)["format_valid_rate"] is None


def test_ground_truth_prefers_metadata_pixels(tmp_path):
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": answer({"action": "click", "coordinate": [185, 192]})}]
    sample = Sample(messages, [], id="s1", source="t1",
                    metadata={"action_abs": {"action": "click", "coordinate": [200, 460]}, "target_box": BOX,
                              "screen_size": [1080, 2400], "coordinate_space": "norm1000"})
    truth = ground_truth(sample, GEOM, "norm999")
    assert truth.point_px == (200.0, 460.0) and truth.box == BOX and truth.space == "norm1000"
    sample.metadata = {}
    truth = ground_truth(sample, GEOM, "norm1000")
    assert truth.point_px == pytest.approx((199.8, 460.8)) and truth.box is None


def test_gallery_picture_marks_truth_and_predictions(workspace):
    from demo import ensure_demo_data

    path = ensure_demo_data(workspace).screen("files_root").path
    truth_row = {"target_box": BOX, "truth_point": [200, 460]}
    picture = draw_predictions(path, truth_row, [("a", (31, 119, 180), {"pred_point": [600, 1200]}),
                                                 ("b", (214, 39, 40), None)], height=480)
    assert picture.size == (216, 480)
    assert picture.getpixel((int(100 * 0.2) + 1, int(440 * 0.2))) == (22, 160, 60)  # the box's left edge
