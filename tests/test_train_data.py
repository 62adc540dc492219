"""The trainer's data path: demo slicing, trajectory split, encode_sample ids and labels, pixels that agree."""
import json

import pytest

from lora_core.qwen.chat import IMAGE_PAD_ID, encode_sample
from lora_core.data.images import read_image_size
from lora_core.training.presets import preset
from lora_core.training.train import (
    PixelCache,
    RunFailure,
    batch_for,
    demo_samples,
    encode_all,
    jsonl_samples,
    next_token_loss,
    prepare_data,
    split_by_trajectory,
    trained_positions,
)


@pytest.fixture(scope="module")
def config():
    return preset("tiny-cpu").config()


@pytest.fixture(scope="module")
def processor(embedded_path):
    from lora_core.qwen.checkpoint import load_processor

    return load_processor(embedded_path)


@pytest.fixture(scope="module")
def samples(workspace, config):
    return demo_samples(workspace, config)


def test_demo_trajectories_become_one_sample_per_step(samples):
    assert len(samples) == 22 and len({s.source for s in samples}) == 5
    click = next(s for s in samples if s.metadata["action_abs"]["action"] == "click")
    assert click.metadata["target_box"] and click.metadata["coordinate_space"] == "norm1000"
    assert click.metadata["screen_size"] == [1080, 2400]
    assert all(len(s.images) == 1 for s in samples)  # max_images_per_sample 1
    assert all(s.messages[-1]["role"] == "assistant" for s in samples)


def test_split_is_by_trajectory_and_seeded(samples):
    train, val = split_by_trajectory(samples, 0.2, seed=42)
    assert {s.source for s in train}.isdisjoint({s.source for s in val})
    assert len({s.source for s in val}) == 1 and len(train) + len(val) == len(samples)
    assert [s.id for s in split_by_trajectory(samples, 0.2, seed=42)[1]] == [s.id for s in val]
    assert split_by_trajectory(samples[:3], 0.2, seed=1)[1] == []  # one trajectory: no validation


def test_items_are_exactly_encode_sample(samples, processor, embedded_info, config):
    settings = config.image_settings(embedded_info.settings)
    items, skipped = encode_all(samples[:4], processor.tokenizer, settings, embedded_info.chat_template, config)
    assert skipped == [] and len(items) == 4
    for item, sample in zip(items, samples):
        expected = encode_sample(sample.messages, processor.tokenizer, [read_image_size(p) for p in sample.images],
                                 settings, embedded_info.chat_template, "last", config.sft.max_length)
        assert item.input_ids == expected.input_ids and item.labels == expected.labels


def test_pixels_and_pads_agree(samples, processor, embedded_info, config):
    settings = config.image_settings(embedded_info.settings)
    items, _ = encode_all(samples[:3], processor.tokenizer, settings, embedded_info.chat_template, config)
    batch = batch_for(items, PixelCache(processor.image_processor))
    pads = int((batch["input_ids"] == IMAGE_PAD_ID).sum())
    grids = batch["image_grid_thw"]
    assert pads == sum(item.visual_tokens for item in items) == int((grids.prod(-1) // 4).sum())
    assert batch["pixel_values"].shape[0] == int(grids.prod(-1).sum())
    assert tuple(grids[0].tolist()) == items[0].geometries[0].grid_thw == (1, 32, 14)  # 1080×2400 at max_dim 520
    assert int(batch["mm_token_type_ids"].sum()) == pads
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_kept_logits_loss_equals_the_models_own_loss(samples, processor, embedded_info, embedded_path, config):
    import torch

    from lora_core.qwen.checkpoint import load_model

    settings = config.image_settings(embedded_info.settings)
    items, _ = encode_all(samples[:2], processor.tokenizer, settings, embedded_info.chat_template, config)
    batch = batch_for(items, PixelCache(processor.image_processor))
    model = load_model(embedded_path)
    with torch.no_grad():
        reference = model(**batch).loss
        keep = trained_positions(batch["labels"])
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"}, logits_to_keep=keep)
        ours = next_token_loss(outputs.logits, batch["labels"], keep)
    assert outputs.logits.shape[:2] == (2, len(keep)) and len(keep) < batch["input_ids"].shape[1] / 2
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_a_cut_inside_image_pads_is_skipped_with_a_reason(samples, processor, embedded_info, config):
    short = config.copy()
    short.sft.max_length = 80  # the image pads start around token 70
    items, skipped = encode_all(samples[:1], processor.tokenizer, short.image_settings(embedded_info.settings),
                                embedded_info.chat_template, short)
    assert items == [] and "cuts through the pads of image 1" in skipped[0]


def test_native_jsonl_is_read_with_its_metadata(tmp_path, samples, workspace, config, processor, embedded_info):
    import shutil

    (tmp_path / "images").mkdir()
    lines = []
    for sample in samples[:6]:
        messages = json.loads(json.dumps(sample.messages))
        for message in messages:
            if isinstance(message["content"], list):
                for item in message["content"]:
                    if item.get("type") == "image":
                        item["image"] = f"images/{sample.images[0].name}"
        shutil.copy(sample.images[0], tmp_path / "images" / sample.images[0].name)
        lines.append(json.dumps({"id": sample.id, "messages": messages, "metadata": sample.metadata}))
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    read = jsonl_samples(path)
    assert [s.id for s in read] == [s.id for s in samples[:6]]
    assert read[1].metadata["source"] == samples[1].source and read[1].images[0].parent == tmp_path / "images"
    data = prepare_data(config, workspace, path, processor.tokenizer, embedded_info,
                        config.image_settings(embedded_info.settings))
    assert data.source == str(path) and len(data.train) + len(data.val) == 6


@pytest.mark.parametrize("line, message", [
    ('{"messages": [{"role": "user", "content": [{"type": "image", "image": "../../etc/passwd"}]}]}', "outside"),
    ('{"messages": "hello"}', "no non-empty 'messages' list"),
    ("[1, 2", "not valid JSON"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n{broken', "line 2"),
])
def test_bad_jsonl_is_bad_data(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(RunFailure, match=message) as caught:
        jsonl_samples(path)
    assert caught.value.reason == "bad data"


def test_vision_lora_gets_its_own_learning_rate(embedded_path, tmp_path):
    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.config import LLM_TARGETS, VISION_TARGETS
    from lora_core.training.run_folder import RunFolder
    from lora_core.training.train import attach_lora, is_vision_parameter, make_trainer_class, training_arguments

    config = preset("tiny-cpu").config()
    config.lora.target_modules = LLM_TARGETS + VISION_TARGETS
    config.lora.vision_learning_rate = 1e-5
    model, entries = attach_lora(load_model(embedded_path), config)
    trainer_class = make_trainer_class()
    trainer_class.vision_learning_rate = config.lora.vision_learning_rate
    trainer = trainer_class(model=model, args=training_arguments(config, RunFolder(tmp_path), False, False))
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    by_rate = {}
    for group in optimizer.param_groups:
        by_rate.setdefault(group["lr"], set()).update(is_vision_parameter(names[id(p)]) for p in group["params"])
    assert by_rate == {config.sft.learning_rate: {False}, 1e-5: {True}}
    trained = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert trained == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_llamafactory_json_list_trains_as_is():
    """The trainer reads every dataset form the inspector audits: here LLaMA-Factory's own demo set."""
    from tests.conftest import PEER_DATA

    samples = jsonl_samples(PEER_DATA / "llamafactory" / "mllm_demo.json")
    assert len(samples) == 6
    assert all(image.exists() for sample in samples for image in sample.images)
    assert len({s.source for s in samples}) == 6  # no trajectory ids: each record is its own group
