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
