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


def test_text_only_samples_are_scored_on_the_screen_their_metadata_names():
    from lora_core.training.evaluate import answer_frame

    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": answer({"action": "click", "coordinate": [185, 192]})}]
    sample = Sample(messages, [], metadata={"screen_size": [1080, 2400], "coordinate_space": "norm1000"})
    frame = answer_frame(sample, [])
    assert (frame.width, frame.height) == (1080, 2400) and answer_frame(sample, [GEOM]) is GEOM
    truth = ground_truth(sample, frame, "norm999")
    assert truth.point_px == pytest.approx((199.8, 460.8)) and truth.screen_size == (1080, 2400)
    row = score(answer({"action": "click", "coordinate": [190, 195]}), truth, frame, 0.05)
    assert row["hit"] and row["hit_rule"] == "within 54 px" and row["pred_point"] == pytest.approx([205.2, 468.0])

    bare = Sample(messages, [])  # no image, no screen: the answer is judged on format and action type only
    assert answer_frame(bare, []) is None
    truth = ground_truth(bare, None, "norm1000")
    assert truth.point_px is None and truth.screen_size is None and truth.kind == "click"
    row = score(answer({"action": "click", "coordinate": [190, 195]}), truth, None, 0.05)
    assert row["valid"] and row["action_match"] and "hit" not in row and row["pred_point"] is None
    assert row["screen_size"] is None and "no screenshot" in row["problems"][-1]
    assert summarize([row], None)["click_samples"] == 0


def test_decode_answer_stops_at_the_end_of_the_turn(encoder, special):
    from lora_core.training.evaluate import decode_answer

    ids = encoder.tokenizer(" hello world", add_special_tokens=False)["input_ids"]
    assert decode_answer(encoder, ids + [special.im_end] + ids) == "hello world"
    assert decode_answer(encoder, ids + [special.endoftext, special.im_end]) == "hello world"
    assert decode_answer(encoder, ids) == "hello world" and decode_answer(encoder, []) == ""


@pytest.fixture(scope="module")
def tiny_config():
    from lora_core.training.presets import preset

    config = preset("tiny-cpu").config()
    config.evaluation.max_new_tokens = 4
    return config


@pytest.fixture(scope="module")
def demo_items(workspace, embedded_path, tiny_config):
    from lora_core.training.data import demo_samples, encode_all, run_encoder

    run_enc = run_encoder(tiny_config, embedded_path)
    samples = demo_samples(workspace, tiny_config)[:2]
    text_only = Sample([{"role": "user", "content": "Open the Sales folder."},
                        {"role": "assistant", "content": answer({"action": "click", "coordinate": [185, 192]})}],
                       [], id="text-only", source="text", metadata={"screen_size": [1080, 2400]})
    items, skipped = encode_all(samples + [text_only], run_enc, tiny_config.training.max_images_per_sample)
    assert skipped == []
    return run_enc, items


def test_prompt_item_is_the_rendering_up_to_the_generation_prompt(demo_items, special):
    from lora_core.qwen.chat import IGNORE_INDEX
    from lora_core.training.evaluate import prompt_item

    run_enc, items = demo_items
    for item in items:
        prompt = prompt_item(item, run_enc)
        assert prompt.sample.messages == item.sample.messages[:-1] and prompt.sample.images == item.sample.images
        header = special.assistant_header
        assert tuple(prompt.input_ids[-len(header):]) == header
        assert prompt.input_ids == item.full_input_ids[:len(prompt.input_ids)]  # the answer is all that is left out
        assert set(prompt.labels) == {IGNORE_INDEX} and prompt.geometries == item.geometries
        assert prompt.input_ids.count(special.image_pad) == sum(g.visual_tokens for g in prompt.geometries)


def test_evaluate_items_generates_and_scores_every_sample(demo_items, embedded_path, tiny_config):
    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.collate import PixelCache
    from lora_core.training.evaluate import evaluate_items

    run_enc, items = demo_items
    model = load_model(embedded_path)
    result = evaluate_items(model, items, PixelCache(run_enc), run_enc, None, tiny_config)
    assert not result.partial and [row["id"] for row in result.rows] == [item.sample.id for item in items]
    assert result.rows[-1]["image"] is None and result.rows[0]["image"] == str(items[0].sample.images[-1])
    assert all(row["prompt_tokens"] > 0 and isinstance(row["output"], str) for row in result.rows)
    assert result.metrics["samples"] == 3 and result.metrics["eval_loss"] > 0
    stopped = evaluate_items(model, items, PixelCache(run_enc), run_enc, None, tiny_config, stop_check=lambda: True,
                             eval_loss=1.5)
    assert stopped.partial and stopped.rows == [] and stopped.metrics["eval_loss"] == 1.5
