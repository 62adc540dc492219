"""The trainer's data path: demo slicing, trajectory split, the run encoder's ids and labels, pixels that agree."""
import json

import pytest

from lora_core.data.images import read_image_size
from lora_core.qwen.chat import IGNORE_INDEX, build_labels, render_chat
from lora_core.qwen.geometry import geometry
from lora_core.training.collate import PixelCache, batch_for, trained_positions
from lora_core.training.presets import preset
from lora_core.training.data import (
    demo_samples,
    encode_all,
    file_samples,
    prepare_data,
    run_encoder,
    split_by_trajectory,
)
from lora_core.training.failures import RunFailure
from lora_core.training.trainer import next_token_loss


@pytest.fixture(scope="module")
def config():
    return preset("tiny-cpu").config()


@pytest.fixture(scope="module")
def processor(embedded_path):
    from lora_core.qwen.checkpoint import load_processor

    return load_processor(embedded_path)


@pytest.fixture(scope="module")
def run_enc(config, embedded_path):
    """The encoder a tiny-cpu run trains with."""
    return run_encoder(config, embedded_path)


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


def test_run_encoder_follows_the_config(run_enc, embedded_info, config):
    assert run_enc.settings == config.image_settings(embedded_info.settings)
    assert run_enc.max_length == config.sft.max_length and run_enc.recipe.label_mode.value == config.sft.label_mode
    assert run_enc.chat_template == embedded_info.chat_template


def test_items_are_exactly_the_template_cut_then_labelled(samples, run_enc, processor, embedded_info, config):
    """encode_all gives the checkpoint template's rendering, pads expanded, cut at max_length, then labelled."""
    settings = config.image_settings(embedded_info.settings)
    items, skipped = encode_all(samples[:4], run_enc, config.training.max_images_per_sample)
    assert skipped == [] and len(items) == 4
    special = run_enc.special
    for item, sample in zip(items, samples):
        geometries = [geometry(*read_image_size(p), settings) for p in sample.images]
        assert item.sample is sample and item.geometries == geometries
        rendered = render_chat(sample.messages, processor.tokenizer, geometries, special, embedded_info.chat_template)
        ids = rendered.input_ids[:config.sft.max_length]
        assert item.input_ids == ids
        assert item.labels == build_labels(ids, special, "last", rendered.loss_overrides)
        assert item.trained_tokens > 0 and item.input_ids.count(special.image_pad) == item.visual_tokens


def test_pixels_and_pads_agree(samples, run_enc, processor, special, config):
    import torch

    items, _ = encode_all(samples[:3], run_enc, config.training.max_images_per_sample)
    batch = batch_for(items, PixelCache(run_enc))
    pads = int((batch["input_ids"] == special.image_pad).sum())
    grids = batch["image_grid_thw"]
    assert pads == sum(item.visual_tokens for item in items) == int((grids.prod(-1) // 4).sum())
    assert batch["pixel_values"].shape[0] == int(grids.prod(-1).sum())
    assert tuple(grids[0].tolist()) == items[0].geometries[0].grid_thw == (1, 32, 14)  # 1080×2400 at max_dim 520
    assert int(batch["mm_token_type_ids"].sum()) == pads
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == special.pad).all()
    # the cache's pixels are the checkpoint processor's own, for the image pre-resized as the geometry says
    from PIL import Image

    from lora_core.data.images import open_screenshot

    geom = items[0].geometries[0]
    image = open_screenshot(items[0].sample.images[0]).resize((geom.pre_width, geom.pre_height),
                                                              Image.Resampling.BICUBIC)
    reference = processor.image_processor(images=[image], return_tensors="pt", size={
        "shortest_edge": geom.settings.min_pixels, "longest_edge": geom.settings.max_pixels})
    first = int(grids[0].prod())
    assert torch.equal(batch["pixel_values"][:first], reference["pixel_values"])
    assert torch.equal(items[0].pixels()[0], reference["pixel_values"])


def test_kept_logits_loss_equals_the_models_own_loss(samples, run_enc, embedded_path, config):
    import torch

    from lora_core.qwen.checkpoint import load_model

    items, _ = encode_all(samples[:2], run_enc, config.training.max_images_per_sample)
    batch = batch_for(items, PixelCache(run_enc))
    model = load_model(embedded_path)
    with torch.no_grad():
        reference = model(**batch).loss
        keep = trained_positions(batch["labels"])
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"}, logits_to_keep=keep)
        ours = next_token_loss(outputs.logits, batch["labels"], keep)
    assert outputs.logits.shape[:2] == (2, len(keep)) and len(keep) < batch["input_ids"].shape[1] / 2
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_a_cut_inside_image_pads_is_skipped_with_a_reason(samples, run_enc, config):
    short = run_enc.with_options(max_length=80)  # the image pads start around token 70
    items, skipped = encode_all(samples[:1], short, config.training.max_images_per_sample)
    assert items == [] and "cuts through the pads of image 1" in skipped[0]


def test_too_many_images_and_untrained_answers_are_skipped_with_a_reason(samples, run_enc):
    items, skipped = encode_all(samples[:1], run_enc, max_images=0)
    assert items == [] and "1 images, above max_images_per_sample (0)" in skipped[0]
    full = run_enc.encode(samples[0]).full_length
    cut = run_enc.with_options(max_length=full - 3)  # the answer's <|im_end|> is cut: nothing trains
    items, skipped = encode_all(samples[:1], cut, max_images=1)
    assert items == [] and "no answer token is trained" in skipped[0]


def test_native_jsonl_is_read_with_its_metadata(tmp_path, samples, workspace, config, run_enc):
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
    read = file_samples(path)
    assert [s.id for s in read] == [s.id for s in samples[:6]]
    assert read[1].metadata["source"] == samples[1].source and read[1].images[0].parent == tmp_path / "images"
    data = prepare_data(config, workspace, path, run_enc)
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
        file_samples(path)
    assert caught.value.reason == "bad data"


def test_vision_lora_gets_its_own_learning_rate(embedded_path, tmp_path):
    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.config import LLM_TARGETS, VISION_TARGETS
    from lora_core.training.run_folder import RunFolder
    from lora_core.training.train import training_arguments
    from lora_core.training.trainer import attach_lora, is_vision_parameter, make_trainer_class

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

    samples = file_samples(PEER_DATA / "llamafactory" / "mllm_demo.json")
    assert len(samples) == 6
    assert all(image.exists() for sample in samples for image in sample.images)
    assert len({s.source for s in samples}) == 6  # no trajectory ids: each record is its own group


def test_gradient_accumulation_averages_over_every_trained_token(samples, run_enc, embedded_path, tmp_path, config):
    """One optimizer step over two micro-batches logs (and trains on) the loss over every trained token of
    the step, as HF does with num_items_in_batch: not their sum, and not the mean of the micro-batch means."""
    import torch

    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.collate import Collator, ItemDataset, takes_token_types
    from lora_core.training.run_folder import RunFolder
    from lora_core.training.train import training_arguments
    from lora_core.training.trainer import attach_lora, make_trainer_class

    items, _ = encode_all(samples[:2], run_enc, config.training.max_images_per_sample)
    assert items[0].trained_tokens != items[1].trained_tokens  # the two normalisations differ here
    model, _ = attach_lora(load_model(embedded_path), config)  # LoRA B starts at zero: the base model's loss
    cache = PixelCache(run_enc)
    with torch.no_grad():
        reference = float(model(**batch_for(items, cache)).loss)
        per_item = [float(model(**batch_for([item], cache)).loss) for item in items]
    accumulate = config.copy()
    sft = accumulate.sft
    sft.per_device_train_batch_size, sft.gradient_accumulation_steps, sft.max_steps = 1, 2, 1
    sft.logging_steps, sft.eval_strategy, sft.save_strategy, sft.load_best_model_at_end = 1, "no", "no", False
    accumulate.training.gradient_checkpointing = False
    trainer = make_trainer_class()(model=model, args=training_arguments(accumulate, RunFolder(tmp_path), False, False),
                                   train_dataset=ItemDataset(items),
                                   data_collator=Collator(cache, takes_token_types(model)))
    trainer.train()
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    mean_of_means = sum(per_item) / 2  # a random model's losses are all near ln(vocab): compare distances
    assert logged and abs(logged[0] - reference) < abs(reference - mean_of_means) / 4
    assert logged[0] == pytest.approx(reference, rel=1e-2)  # not the sum of two losses
