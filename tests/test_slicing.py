import json
import re

import pytest

from lora_core.data.slicing import SliceOptions, SliceStep, slice_trajectory, split_trajectories


def test_split_keeps_trajectories_whole_and_is_seeded():
    ids = [f"t{i}" for i in range(10)] * 3  # samples of ten trajectories
    train, val = split_trajectories(ids, 0.2, seed=7)
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    assert split_trajectories(ids, 0.2, seed=7) == (train, val)
    assert split_trajectories(ids, 0.2, seed=8) != (train, val)


def test_split_edge_cases():
    assert split_trajectories(["a", "a"], 0.5, seed=1) == (["a"], [])  # one trajectory: nothing to validate on
    assert split_trajectories(["a", "b"], 0.01, seed=1)[1] != []  # a positive ratio validates on at least one
    assert split_trajectories(["a", "b", "c"], 0.99, seed=1)[0] != []  # and trains on at least one
    assert split_trajectories(["a", "b"], 0.0, seed=1) == (["a", "b"], [])


def test_wrong_steps_stay_in_history_untrained_and_get_no_sample():
    steps = [
        SliceStep("a.png", 1080, 2400, "Sales is the first folder, so I open it.", {"action": "click", "coordinate": [540, 400]}),
        SliceStep("b.png", 1080, 2400, "Wrong: I opened Marketing.", {"action": "click", "coordinate": [540, 600]}, wrong=True),
        SliceStep("c.png", 1080, 2400, "This is Marketing, not Sales; go back.", {"action": "system_button", "button": "back"}),
    ]
    samples = slice_trajectory("Open Sales", steps, SliceOptions(max_images=2))
    assert len(samples) == 2
    history = [m for m in samples[1]["messages"] if m["role"] == "assistant"][:-1]
    assert history[-1]["loss"] is False and '"coordinate": [500, 250]' in history[-1]["content"]
    images = [item["image"] for m in samples[1]["messages"] if isinstance(m["content"], list) for item in m["content"]
              if item["type"] == "image"]
    assert images == ["b.png", "c.png"]  # the last K=2 screenshots


STEPS = [
    SliceStep("a.png", 1080, 2400, "Sales is the first folder, so I open it.", {"action": "click", "coordinate": [540, 400]}),
    SliceStep("b.png", 1080, 2400, "The Q3 report is the second row; I open it.",
              {"action": "swipe", "start_coordinate": [540, 1800], "end_coordinate": [540, 600]}),
]


def answer_points(sample) -> list:
    content = sample["messages"][-1]["content"]
    action = json.loads(re.search(r"<tool_call>(.*)</tool_call>", content, re.S).group(1))["arguments"]
    return [action[key] for key in ("coordinate", "start_coordinate", "end_coordinate") if key in action]


def test_abs_resized_answers_use_the_encoders_geometry(encoder):
    """frame_of is the encoder's geometry: abs-resized points are in the pixels of the image the model sees."""
    at_1024 = encoder.with_options(max_dim=1024)  # 1080×2400 is resized to 448×1024
    samples = slice_trajectory("Open Sales", STEPS, SliceOptions(coordinate_space="abs-resized", frame_of=at_1024.geometry))
    assert answer_points(samples[0]) == [[224, 171]]  # 540·448/1080, 400·1024/2400 rounded
    assert answer_points(samples[1]) == [[224, 768], [224, 256]]
    full = slice_trajectory("Open Sales", STEPS, SliceOptions(coordinate_space="abs-resized", frame_of=encoder.geometry))
    assert answer_points(full[0]) == [[544, 400]]  # the model default resizes 1080 to 1088


def test_norm_answers_do_not_depend_on_the_frame(encoder):
    plain = slice_trajectory("Open Sales", STEPS, SliceOptions(coordinate_space="norm1000"))
    framed = slice_trajectory("Open Sales", STEPS, SliceOptions(coordinate_space="norm1000",
                                                                 frame_of=encoder.with_options(max_dim=520).geometry))
    assert plain == framed and answer_points(plain[0]) == [[500, 167]]


def test_abs_resized_without_a_frame_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="abs-resized coordinates need the model's resized size"):
        slice_trajectory("Open Sales", STEPS, SliceOptions(coordinate_space="abs-resized"))
