"""Packing proves itself on the CPU with the embedded model: a packed row gives each sample the loss and the
LoRA gradients it has alone, and a packed run trains the curve a padded run trains."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.training.packing import split_into_packs, trained_token_count
from tests.conftest import ROOT

TOLERANCE = 1e-4


def test_packs_hold_every_sample_within_the_budget():
    lengths = [900, 300, 5000, 700, 120, 640]
    packs = split_into_packs(lengths, 1500)
    assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
    assert [2] in packs  # longer than the budget: alone
    assert all(sum(lengths[i] for i in pack) <= 1500 for pack in packs if pack != [2])
    assert len(packs) == 3  # 5000 | 900+300+120 | 700+640
    assert split_into_packs(lengths, None) == [list(range(len(lengths)))]


def lora_model_with_weights(embedded_path, seed: int):
    """The embedded model under LoRA (dropout 0) with packed attention; LoRA B starts at zero, so it is given
    weights, and the gradients then depend on the attention."""
    import torch

    from lora_core.training.config import RunConfig
    from lora_core.training.packing import use_packed_attention
    from lora_core.training.trainer import attach_lora, load_base_model

    config = RunConfig()
    config.lora.dropout = 0.0
    torch.manual_seed(seed)
    model, _ = attach_lora(load_base_model(embedded_path, config, cuda=False), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02)
    use_packed_attention(model)
    return model


def packing_setup(workspace, embedded_path, samples: int = 4, seed: int = 0):
    """(LoRA model, the first demo samples, padding collator, packing collator with no budget); the encoder is
    `packing.pixel_cache.encoder`."""
    from lora_core.training.collate import Collator, PackingCollator, PixelCache, takes_token_types
    from lora_core.training.config import RunConfig
    from lora_core.training.data import prepare_data, run_encoder
    from lora_core.training.packing import RopePositions

    config = RunConfig()
    config.model = str(embedded_path)
    config.data.val_fraction = 0.0
    encoder = run_encoder(config, embedded_path)
    items = prepare_data(config, workspace, None, encoder).train[:samples]
    model = lora_model_with_weights(embedded_path, seed=seed)
    cache = PixelCache(encoder)
    padded = Collator(cache, takes_token_types(model))
    packing = PackingCollator(cache, RopePositions(model, encoder.special.image_pad), None)
    return model, items, padded, packing


@pytest.fixture(scope="module")
def setup(workspace, embedded_path):
    return packing_setup(workspace, embedded_path)


def per_sample_losses(model, pack, samples=None):
    """Each sample's summed cross-entropy over its trained tokens, from one packed forward; `samples`: the
    sample lengths when the row is attended otherwise."""
    import torch.nn.functional as functional

    inputs = {k: v for k, v in pack.items() if k not in ("labels", "trained_positions")}
    logits = model(**inputs).logits[0]
    labels = pack["labels"][0]
    losses, start = [], 0
    for length in samples or pack.get("packed_segments", (labels.shape[0],)):
        end = start + length
        losses.append(functional.cross_entropy(logits[start:end - 1].float(), labels[start + 1:end],
                                               ignore_index=IGNORE_INDEX, reduction="sum"))
        start = end
    return losses


def alone_loss(model, batch):
    import torch.nn.functional as functional

    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "pixel_values",
                                                      "image_grid_thw", "mm_token_type_ids")}
    logits = model(**inputs).logits[0]
    labels = batch["labels"][0]
    return functional.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=IGNORE_INDEX, reduction="sum")


def lora_gradients(model):
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def test_packed_row_gives_each_sample_its_own_loss_and_gradients(setup):
    model, items, padded, packing = setup
    model.train()
    batch = packing(items)
    assert len(batch["packs"]) == 1 and batch["packs"][0]["packed_segments"] == tuple(len(i.input_ids) for i in items)
    assert batch["trained_tokens"] == trained_token_count(items) > 0
    assert batch["input_tokens"] == sum(len(i.input_ids) for i in items) and batch["samples"] == len(items)

    model.zero_grad()
    packed = per_sample_losses(model, batch["packs"][0])
    sum(packed).backward()
    packed = [float(loss.detach()) for loss in packed]
    packed_grads = lora_gradients(model)

    model.zero_grad()
    alone = []
    for item in items:
        loss = alone_loss(model, padded([item]))
        loss.backward()
        alone.append(float(loss))
    alone_grads = lora_gradients(model)

    for mine, reference in zip(packed, alone):
        assert abs(float(mine) - float(reference)) <= TOLERANCE * max(1.0, abs(float(reference)))
    assert any(float(g.abs().max()) > 0 for g in alone_grads.values())
    for name, reference in alone_grads.items():
        scale = max(1.0, float(reference.abs().max()))
        assert float((packed_grads[name] - reference).abs().max()) <= TOLERANCE * scale, name


def test_without_segments_attention_crosses_samples_and_the_losses_change(setup):
    """The check above can fail: the same row attended as one sequence gives other losses."""
    import torch

    model, items, padded, packing = setup
    pack = dict(packing(items)["packs"][0])
    segments = pack.pop("packed_segments")
    pack.pop("packed_cu_seqlens"), pack.pop("packed_max_length")
    with torch.no_grad():
        crossed = per_sample_losses(model, pack, samples=segments)  # one causal sequence
        alone = [alone_loss(model, padded([item])) for item in items]
    assert abs(float(crossed[0]) - float(alone[0])) <= TOLERANCE * max(1.0, float(alone[0]))  # nothing before it
    assert max(abs(float(c) - float(a)) for c, a in zip(crossed[1:], alone[1:])) > 1e-3


def test_rope_positions_restart_per_sample(setup):
    model, items, _, packing = setup
    pack = packing(items[:2])["packs"][0]
    first = len(items[0].input_ids)
    positions = pack["position_ids"][:, 0, :]
    assert int(positions[:, first].max()) == 0  # the second sample starts at position 0 on every axis
    assert int(pack["labels"][0, first]) == IGNORE_INDEX  # nothing learns across the border


def test_a_pack_of_one_sample_is_plain_causal_attention_with_the_same_loss(setup, monkeypatch):
    """One sample needs no segments: the row runs the plain recipe's own causal sdpa (cuDNN's kernel on an
    H200), not the per-segment or varlen path; a pack of two still splits."""
    from lora_core.training import packing as packing_module
    from lora_core.training.packing import ONE_SAMPLE_KEY

    model, items, padded, packing = setup
    model.eval()
    split_calls = []
    per_segment = packing_module.per_segment_sdpa
    def watched(module, query, key, value, lengths, causal, *rest):  # causal: the text model's, not the tower's
        split_calls.extend([lengths] if causal else [])
        return per_segment(module, query, key, value, lengths, causal, *rest)

    monkeypatch.setattr(packing_module, "per_segment_sdpa", watched)
    slotted = type(packing)(packing.pixel_cache, packing.rope, None, slots=4)
    one = slotted(items[:1])["packs"][0]
    assert one[ONE_SAMPLE_KEY] is True and one["packed_cu_seqlens"].shape[0] == 5  # same boundary shape
    (packed,) = per_sample_losses(model, one)
    assert split_calls == []
    alone = alone_loss(model, padded(items[:1]))
    assert abs(float(packed) - float(alone)) <= TOLERANCE * max(1.0, abs(float(alone)))
    two = slotted(items[:2])["packs"][0]
    assert two[ONE_SAMPLE_KEY] is False
    per_sample_losses(model, two)
    assert split_calls  # the check above can fail: two samples take the per-segment path on the CPU


def test_pack_budget_splits_a_micro_batch(setup):
    _, items, _, packing = setup
    lengths = [len(i.input_ids) for i in items]
    packing_small = type(packing)(packing.pixel_cache, packing.rope, max(lengths) + 1)
    batch = packing_small(items)
    assert len(batch["packs"]) > 1
    assert all(pack["input_ids"].shape[1] <= max(lengths) + 1 for pack in batch["packs"])
    assert sum(pack["input_ids"].shape[1] for pack in batch["packs"]) == sum(lengths)


def run_losses(workspace: Path, embedded_path: Path, name: str, packing: bool) -> list[float]:
    from lora_core.training.config import dump_yaml
    from lora_core.training.presets import preset

    config = preset("tiny-cpu").config()
    config.model = str(embedded_path)
    config.sft.max_steps, config.sft.logging_steps = 4, 1
    config.sft.per_device_train_batch_size, config.sft.gradient_accumulation_steps = 3, 2
    config.sft.eval_strategy = config.sft.save_strategy = "no"
    config.sft.load_best_model_at_end = False
    config.lora.dropout = 0.0
    config.training.packing = packing
    if packing:  # the packing collator in forked data-loader workers, as on a GPU
        config.passthrough["dataloader_num_workers"] = 2
    config.training.max_tokens_per_batch = 700  # some micro-batches split into two packs
    config.evaluation.after_training = False
    folder = workspace / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(dump_yaml(config))
    subprocess.run([sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"),
                    "--workspace", str(workspace)], cwd=ROOT, check=True, capture_output=True, timeout=600,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "finished" and status["tokens_seen"] > 0 and status["samples_seen"] == 4 * 6
    return [m["loss"] for m in metrics if m["kind"] == "train" and "loss" in m]


def test_packed_run_trains_the_padded_runs_curve(workspace, embedded_path):
    packed = run_losses(workspace, embedded_path, "packing-on", True)
    padded = run_losses(workspace, embedded_path, "packing-off", False)
    assert len(packed) == len(padded) == 4
    assert packed[0] != packed[-1]  # it trains
    for step, (a, b) in enumerate(zip(packed, padded), start=1):
        assert abs(a - b) <= 1e-3 * max(1.0, abs(b)), f"step {step}: packed {a}, padded {b}"


def test_compiled_blocks_train_what_eager_blocks_train(setup, embedded_path):
    """training.compile: the same losses and LoRA gradients with every block under torch.compile (aot_eager
    here: dynamo's capture and the autograd split that inductor would fuse on a GPU), segment lengths left out
    as the trainer leaves them out for compiled blocks."""
    import torch
    from torch._dynamo.utils import counters

    from lora_core.training.compiled import compile_blocks, repeated_blocks

    _, items, _, packing = setup
    model = lora_model_with_weights(embedded_path, seed=1)
    model.train()
    pack = packing(items)["packs"][0]
    segments = pack["packed_segments"]
    unsegmented = {k: v for k, v in pack.items() if k != "packed_segments"}

    def losses_and_gradients():
        model.zero_grad()
        losses = per_sample_losses(model, unsegmented, samples=segments)
        sum(losses).backward()
        return [float(loss) for loss in losses], lora_gradients(model)

    eager_losses, eager_grads = losses_and_gradients()
    torch._dynamo.reset()
    counters.clear()
    assert compile_blocks(model, backend="aot_eager") == len(repeated_blocks(model)) > 2
    compiled_losses, compiled_grads = losses_and_gradients()
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo captured graphs rather than falling back
    torch._dynamo.reset()
    assert all(getattr(block, "_compiled_call_impl", None) is not None for block in repeated_blocks(model))
    for mine, reference in zip(compiled_losses, eager_losses):
        assert abs(mine - reference) <= TOLERANCE * max(1.0, abs(reference))
    for name, reference in eager_grads.items():
        scale = max(1.0, float(reference.abs().max()))
        assert float((compiled_grads[name] - reference).abs().max()) <= TOLERANCE * scale, name


def test_padded_boundaries_and_a_run_wide_bound_change_no_loss(setup):
    """Packs with empty trailing slots and the run's longest sample as the length bound (one compiled graph for
    every pack) give the losses of the plain pack."""
    import torch

    model, items, _, packing = setup
    plain = packing(items[:2])["packs"][0]
    fixed = type(packing)(packing.pixel_cache, packing.rope, None, slots=6, longest=4000)(items[:2])["packs"][0]
    assert fixed["packed_cu_seqlens"].shape == (7,) and fixed["packed_max_length"] == 4000
    assert fixed["packed_cu_seqlens"].tolist()[2:] == [plain["input_ids"].shape[1]] * 5
    with torch.no_grad():
        for compiled_like in (False, True):  # compiled blocks get boundaries only, no Python lengths
            drop = ("packed_segments",) if compiled_like else ()
            mine = per_sample_losses(model, {k: v for k, v in fixed.items() if k not in drop},
                                     samples=fixed["packed_segments"])
            reference = per_sample_losses(model, plain)
            for a, b in zip(mine, reference, strict=True):
                assert abs(float(a) - float(b)) <= TOLERANCE * max(1.0, abs(float(b)))


def trainer_for(model, tmp_path, cache=None):
    from transformers import TrainingArguments

    from lora_core.training.trainer import make_trainer_class

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, bf16=False)
    trainer = make_trainer_class()(model=model, args=args)
    trainer.vision_cache = cache
    return trainer


def test_vision_cache_skips_the_frozen_tower_and_changes_no_loss_or_gradient(setup, tmp_path):
    from lora_core.training.packing import IMAGES_KEY
    from lora_core.training.vision_cache import VisionCache, vision_cache_wanted

    model, items, _, packing = setup
    model.train()
    assert vision_cache_wanted("auto", model) and not vision_cache_wanted(False, model)
    pack = packing(items)["packs"][0]
    assert len(pack[IMAGES_KEY]) == pack["image_grid_thw"].shape[0] > 0

    def loss_and_gradients(trainer, pack):
        model.zero_grad()
        loss = trainer.compute_loss(model, pack, num_items_in_batch=100)
        loss.backward()
        return float(loss.detach()), lora_gradients(model)

    reference_loss, reference_grads = loss_and_gradients(trainer_for(model, tmp_path), pack)
    cache = VisionCache(model)
    try:
        tower_calls = []
        tower = cache.tower_forward
        cache.tower_forward = lambda *a, **k: tower_calls.append(1) or tower(*a, **k)
        trainer = trainer_for(model, tmp_path, cache)
        first_loss, _ = loss_and_gradients(trainer, pack)
        stripped = cache.strip_pixels(pack)
        assert stripped["pixel_values"].shape[0] == 0 and "cu_seqlens" not in stripped  # nothing to copy
        cached_loss, cached_grads = loss_and_gradients(trainer, stripped)
        assert len(tower_calls) == 1 and cache.stats()["hits"] == 1
        assert cache.stats()["screenshots"] == len({key for key, _ in pack[IMAGES_KEY]})
    finally:
        cache.close()
    for loss in (first_loss, cached_loss):
        assert abs(loss - reference_loss) <= TOLERANCE * max(1.0, abs(reference_loss))
    for name, reference in reference_grads.items():
        assert float((cached_grads[name] - reference).abs().max()) <= TOLERANCE * max(1.0, float(reference.abs().max()))


def test_vision_cache_is_off_while_a_vision_weight_trains(setup):
    from lora_core.training.compiled import vision_tower
    from lora_core.training.vision_cache import vision_cache_wanted

    model = setup[0]
    weight = next(vision_tower(model).parameters())
    weight.requires_grad_(True)
    try:
        assert not vision_cache_wanted("auto", model) and not vision_cache_wanted(True, model)
    finally:
        weight.requires_grad_(False)


def test_partial_checkpointing_counts_the_layers_the_budget_needs():
    from lora_core.training.memory import layers_to_checkpoint

    # 4 GiB of weights, 28 GiB of activations over 28 layers, margin 1: 24 GiB leaves room for 20 layers' worth
    assert layers_to_checkpoint(32, 4, 24, 28, margin=1.0) == 9  # 8 needed, one for safety
    assert layers_to_checkpoint(20, 4, 24, 28, margin=1.0) == 0  # fits without
    assert layers_to_checkpoint(1000, 4, 24, 28, margin=1.0) == 28  # never more than all
    assert layers_to_checkpoint(32, 4, 24, 28) > 9  # the optimizer margin asks for more


def test_training_loss_builds_no_kv_cache_even_when_the_config_asks_for_one(setup, tmp_path):
    """A KV cache in a training forward is never read, and each layer's cache entry made compiled blocks
    recompile once per layer (28 graphs on Qwen3-VL-2B)."""
    from lora_core.training.compiled import inner_model

    model, items, _, packing = setup
    model.train()
    text_config = inner_model(model).language_model.config
    assert text_config.use_cache is False  # load_base_model turns it off where the text model reads it
    text_config.use_cache = True
    try:
        loss, outputs = trainer_for(model, tmp_path).compute_loss(model, packing(items[:2])["packs"][0],
                                                                  return_outputs=True, num_items_in_batch=10)
    finally:
        text_config.use_cache = False
    assert getattr(outputs, "past_key_values", None) is None and float(loss) > 0


def test_vision_prepass_lets_packs_carry_no_pixels_and_changes_no_loss(setup, tmp_path):
    """The pre-pass stores every distinct screenshot's tower output; packs of cached screenshots then carry no
    pixels and no tower inputs, the tower does not run in training, and the loss is the uncached one."""
    from lora_core.training.collate import PackingCollator, PixelCache
    from lora_core.training.packing import IMAGES_KEY
    from lora_core.training.vision_cache import VisionCache

    model, items, _, packing = setup
    model.train()
    reference = float(trainer_for(model, tmp_path).compute_loss(model, packing(items)["packs"][0],
                                                                  num_items_in_batch=100))
    cache = VisionCache(model)
    try:
        distinct = {packing.pixel_cache.key(p, g) for item in items for p, g in zip(item.sample.images, item.geometries)}
        assert cache.fill(model, items, packing.pixel_cache, packing.rope, patches_per_call=1) == len(distinct) > 1
        assert cache.fill(model, items, packing.pixel_cache, packing.rope) == 0  # nothing left to compute
        collator = PackingCollator(packing.pixel_cache, packing.rope, None)
        collator.cached_images = frozenset(cache.entries)
        pack = collator(items)["packs"][0]
        assert pack["pixel_values"].shape == (0, packing(items)["packs"][0]["pixel_values"].shape[1])
        assert "cu_seqlens" not in pack and len(pack[IMAGES_KEY]) == pack["image_grid_thw"].shape[0]
        assert pack["image_grid_thw"].tolist() == packing(items)["packs"][0]["image_grid_thw"].tolist()
        undecoded = PixelCache(packing.pixel_cache.encoder)  # nothing decoded: the grids come from the geometry
        lean = PackingCollator(undecoded, packing.rope, None)
        lean.cached_images = collator.cached_images
        assert lean(items)["packs"][0]["image_grid_thw"].tolist() == pack["image_grid_thw"].tolist()
        assert not undecoded.entries
        tower_calls = []
        tower = cache.tower_forward
        cache.tower_forward = lambda *a, **k: tower_calls.append(1) or tower(*a, **k)
        loss = float(trainer_for(model, tmp_path, cache).compute_loss(model, pack, num_items_in_batch=100))
        assert not tower_calls and cache.stats()["hits"] == 1 and cache.stats()["filled_before_training"] == len(distinct)
    finally:
        cache.close()
    assert abs(loss - reference) <= TOLERANCE * max(1.0, abs(reference))


def test_vision_prepass_stops_at_the_cap_and_uncached_packs_keep_their_pixels(setup):
    from lora_core.training.collate import PackingCollator
    from lora_core.training.vision_cache import VisionCache, bytes_per_visual_token

    model, items, _, packing = setup
    first = items[0].geometries[0]
    cache = VisionCache(model, max_bytes=first.visual_tokens * bytes_per_visual_token(model))
    try:
        assert cache.fill(model, items, packing.pixel_cache, packing.rope, patches_per_call=1) == 1
        collator = PackingCollator(packing.pixel_cache, packing.rope, None)
        collator.cached_images = frozenset(cache.entries)
        mixed = collator(items)["packs"][0]
        assert mixed["pixel_values"].shape[0] == int(mixed["image_grid_thw"].prod(-1).sum()) > 0
        assert "cu_seqlens" in mixed
    finally:
        cache.close()


def test_vision_cache_limit_grows_with_the_memory_budget():
    from lora_core.training.vision_cache import cache_limit_bytes

    gib = 2**30
    assert cache_limit_bytes(None) == cache_limit_bytes(8) == 2 * gib  # the floor, and on the CPU
    assert cache_limit_bytes(24) == int(0.15 * 24 * gib)  # 3.6 GiB: the seed's 189 screenshots at 1024 fit
    assert cache_limit_bytes(125) > cache_limit_bytes(24)


def test_checkpointed_compiled_layers_train_what_eager_layers_train(setup, embedded_path):
    """Partial checkpointing (the first decoder layer) around compiled blocks, as `gradient_checkpointing: auto`
    runs it: the same losses and LoRA gradients as eager blocks without checkpointing."""
    import torch

    from lora_core.training.compiled import compile_blocks, decoder_layers, keep_thread_count_in_recompute
    from lora_core.training.compiled import stop_checkpointing_frozen_blocks
    from lora_core.training.memory import apply_checkpointed_layers

    _, items, _, packing = setup
    model = lora_model_with_weights(embedded_path, seed=2)
    model.train()
    pack = packing(items)["packs"][0]
    segments = pack["packed_segments"]
    unsegmented = {k: v for k, v in pack.items() if k not in ("packed_segments", "packed_images")}

    def losses_and_gradients():
        model.zero_grad()
        losses = per_sample_losses(model, {**unsegmented, "use_cache": False}, samples=segments)
        sum(losses).backward()
        return [float(loss) for loss in losses], lora_gradients(model)

    eager_losses, eager_grads = losses_and_gradients()
    torch._dynamo.reset()
    try:
        compile_blocks(model, backend="aot_eager")
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        stop_checkpointing_frozen_blocks(model)
        apply_checkpointed_layers(model, 1)
        keep_thread_count_in_recompute(model)
        layers = decoder_layers(model)
        assert layers[0].gradient_checkpointing and not any(layer.gradient_checkpointing for layer in layers[1:])
        checkpointed_losses, checkpointed_grads = losses_and_gradients()
    finally:
        torch._dynamo.reset()
    for mine, reference in zip(checkpointed_losses, eager_losses, strict=True):
        assert abs(mine - reference) <= TOLERANCE * max(1.0, abs(reference))
    for name, reference in eager_grads.items():
        scale = max(1.0, float(reference.abs().max()))
        assert float((checkpointed_grads[name] - reference).abs().max()) <= TOLERANCE * scale, name


class FakeTrials:
    """The checkpointing trial's (peak, resting) GiB, one per call, and the compiled activation shares set: the
    decision's logic without a GPU (the trial itself needs one)."""

    def __init__(self, *trials):
        self.trials, self.shares, self.eager = list(trials), [], []

    def measure(self, eager=False):
        self.eager.append(eager)
        trial = self.trials.pop(0)
        if trial == "out of memory":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return trial

    def keep(self, share):
        self.shares.append(share)


def auto_choice(trials, compiled=True, activation_budget=None):
    from types import SimpleNamespace

    from lora_core.training.config import RunConfig
    from lora_core.training.memory import choose_checkpointing

    config = RunConfig()
    config.training.gradient_checkpointing, config.training.memory_budget_gib = "auto", 24
    config.training.activation_memory_budget = activation_budget
    trainer = SimpleNamespace(model=SimpleNamespace(model=SimpleNamespace(language_model=SimpleNamespace(layers=[0] * 28))))
    return choose_checkpointing(config, trainer, [], None, cuda=True, compiled=compiled, measure=trials.measure,
                                keep_activations=trials.keep)


def test_auto_keeps_fewer_compiled_activations_before_it_checkpoints_layers():
    fits = FakeTrials((15.0, 4.0))
    choice = auto_choice(fits)
    assert not choice.on and choice.activation_budget is None and fits.shares == []  # fits as it is

    three_quarters = FakeTrials((24.6, 4.3), (15.3, 4.3))  # the H200's long row: 28.3 GiB, then 17.6 at 75%
    choice = auto_choice(three_quarters)
    assert not choice.on and choice.activation_budget == 0.75 and three_quarters.shares == [0.75]
    assert "75% of their activations" in choice.reason and "within the 24 GiB budget" in choice.reason
    assert three_quarters.eager == [True, False]  # the first trial compiles nothing; the share's trial compiles

    halved = FakeTrials((26.0, 4.0), (22.0, 4.0), (12.0, 4.0))  # 75% is over (25.3 GiB), half fits
    choice = auto_choice(halved)
    assert not choice.on and choice.activation_budget == 0.5 and halved.shares == [0.75, 0.5]
    assert "75% of their activations (the rest recomputed inside each block), 25.3 GiB" in choice.reason
    assert "50% of their activations" in choice.reason and halved.eager == [True, False, False]

    # The H200's demo row of one 16k pack: even a keep of 0.5 × 75% would not fit, so only half is compiled.
    still_over = FakeTrials((65.7, 4.5), (25.6, 4.5))
    choice = auto_choice(still_over)
    assert choice.on and choice.activation_budget == 0.5 and still_over.shares == [0.5]
    assert 0 < choice.layers < 28  # layers from the half share's trial

    over_then_oom = FakeTrials((26.0, 4.0), (22.0, 4.0), "out of memory")
    choice = auto_choice(over_then_oom)  # checkpoints under the share that was measured, and sets it back
    assert choice.on and choice.activation_budget == 0.75 and over_then_oom.shares == [0.75, 0.5, 0.75]
    assert 0 < choice.layers < 28

    eager = FakeTrials((26.0, 4.0))
    choice = auto_choice(eager, compiled=False)
    assert choice.on and choice.activation_budget is None and eager.shares == [] and choice.layers
    assert eager.eager == [False]  # uncompiled blocks: the trial is the run's own forward

    recovered = FakeTrials("out of memory", (20.0, 4.0))  # a smaller GPU: the full trial does not run at all
    choice = auto_choice(recovered)
    assert not choice.on and choice.activation_budget == 0.5 and recovered.shares == [0.5]
    assert "ran out of memory" in choice.reason

    never = FakeTrials("out of memory", "out of memory")
    choice = auto_choice(never)
    assert choice.on and choice.layers is None and choice.activation_budget == 0.5 and "every layer" in choice.reason

    eager_oom = FakeTrials("out of memory")
    assert auto_choice(eager_oom, compiled=False).on and eager_oom.shares == []

    told = FakeTrials((26.0, 4.0))  # a YAML's own activation_memory_budget is left as it is
    choice = auto_choice(told, activation_budget=0.8)
    assert choice.on and choice.activation_budget is None and told.shares == []
    assert told.eager == [False]  # measured compiled, under that share


def test_a_gpu_run_of_small_micro_batches_is_told_how_to_pack_fewer():
    from lora_core.training.packing import fewer_packs_hint

    hint = fewer_packs_hint(per_device=1, accumulation=8, budget=16384, median_tokens=750, cuda=True)
    assert "per_device_train_batch_size 8 with gradient_accumulation_steps 1" in hint
    assert "per_device_train_batch_size 8 " in fewer_packs_hint(2, 4, 16384, 750, cuda=True)
    assert fewer_packs_hint(1, 8, None, 750, cuda=True) is not None  # no budget: everything fits one pack
    assert fewer_packs_hint(1, 8, 16384, 750, cuda=False) is None  # the CPU is not host-bound this way
    assert fewer_packs_hint(11, 2, 16384, 750, cuda=True) is None  # a micro-batch already fills half a pack
    assert fewer_packs_hint(1, 1, 16384, 750, cuda=True) is None  # the step holds one sample
    assert fewer_packs_hint(1, 4, 6200, 5760, cuda=True) is None  # the budget fits one long sample only
