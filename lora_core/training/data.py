"""A run's data: samples from the demo or a dataset file, split by trajectory, encoded by the run's encoder.

A sample that cannot train is skipped with a sentence saying why; the run goes on with the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_core.data.images import ImageInputError
from lora_core.data.samples import Sample, SampleFormatError
from lora_core.qwen.encoder import Encoded, Encoder
from lora_core.training.failures import RunFailure


def demo_samples(workspace: Path, config) -> list[Sample]:
    """The demo trajectories, sliced one sample per step (seed §8.2.2), with the metadata evaluation needs."""
    from demo import ensure_demo_data
    from lora_core.data.datasets import records_dataset
    from lora_core.data.slicing import SliceOptions, demo_sample_records

    demo = ensure_demo_data(workspace)
    options = SliceOptions(max_images=config.training.max_images_per_sample,
                           coordinate_space=config.data.coordinate_space)
    return dataset_samples(records_dataset(demo_sample_records(demo, options), demo.root, "demo trajectories"))


def file_samples(path: Path) -> list[Sample]:
    """A dataset file in any form `lora_core.data.datasets` reads (native JSONL first); images relative to it."""
    from lora_core.data.datasets import read_dataset

    try:
        dataset = read_dataset(Path(path))
    except SampleFormatError as error:
        raise RunFailure("bad data", str(error)) from None
    return dataset_samples(dataset)


def dataset_samples(dataset) -> list[Sample]:
    samples = []
    for index, entry in enumerate(dataset.entries):
        try:
            sample = dataset.sample(index)
        except SampleFormatError as error:
            raise RunFailure("bad data", str(error)) from None
        if any(image is None for image in sample.images):
            raise RunFailure("bad data", f"{dataset.name}, {entry.where} has an inline image without a file; "
                                         "export the image files.")
        samples.append(sample)
    if not samples:
        raise RunFailure("bad data", f"{dataset.name} holds no samples.")
    return samples


def split_by_trajectory(samples: list[Sample], val_fraction: float, seed: int):
    """Whole trajectories go to validation (seed §8.6.4), split as the exporter splits them."""
    from lora_core.data.slicing import split_trajectories

    _, val_ids = split_trajectories([s.trajectory for s in samples], val_fraction, seed)
    val_sources = set(val_ids)
    return ([s for s in samples if s.trajectory not in val_sources],
            [s for s in samples if s.trajectory in val_sources])


def encode_all(samples: list[Sample], encoder: Encoder, max_images: int) -> tuple[list[Encoded], list[str]]:
    """encoder.encode for each sample; a sample that cannot train is skipped with a sentence saying why."""
    items, skipped = [], []
    max_length = encoder.max_length
    for sample in samples:
        name = sample.id or sample.where
        if len(sample.images) > max_images:
            skipped.append(f"{name}: {len(sample.images)} images, above max_images_per_sample "
                           f"({max_images}); re-export with fewer history screenshots.")
            continue
        try:
            encoded = encoder.encode(sample)
        except (ImageInputError, ValueError) as error:
            skipped.append(f"{name}: {error}")
            continue
        if encoded.dropped:
            skipped.append(f"{name}: {encoded.drop_reason or 'the recipe drops it'}.")
            continue
        cut = encoded.cut_inside_image()
        if cut is not None:
            skipped.append(f"{name}: max_length {max_length} cuts through the pads of image "
                           f"{cut + 1} ({encoded.full_length} tokens in full); raise max_length or lower max_dim.")
            continue
        if encoded.trained_tokens == 0:
            skipped.append(f"{name}: no answer token is trained (the answer is cut by max_length "
                           f"{max_length} at {encoded.full_length} tokens, or every answer has loss off).")
            continue
        items.append(encoded)
    return items, skipped


@dataclass
class PreparedData:
    train: list[Encoded]
    val: list[Encoded]
    skipped: list[str]
    source: str  # "demo trajectories" or the dataset path


def run_encoder(config, model_path: Path) -> Encoder:
    """The checkpoint's encoder under the run's label rule, max_length and image settings."""
    options = {"mode": config.sft.label_mode, "max_length": config.sft.max_length,
               "max_dim": config.training.max_dim, "min_pixels": config.training.min_pixels or None,
               "max_pixels": config.training.max_pixels or None}
    return Encoder.from_checkpoint(model_path).with_options(**options)


def prepare_data(config, workspace: Path, data_path: Path | None, encoder: Encoder) -> PreparedData:
    samples = file_samples(data_path) if data_path else demo_samples(workspace, config)
    train_samples, val_samples = split_by_trajectory(samples, config.data.val_fraction, config.data.split_seed)
    max_images = config.training.max_images_per_sample
    train, skipped = encode_all(train_samples, encoder, max_images)
    val, skipped_val = encode_all(val_samples, encoder, max_images)
    skipped += skipped_val
    if not train:
        detail = f" First problem: {skipped[0]}" if skipped else ""
        raise RunFailure("bad data", f"No training sample is usable ({len(samples)} read, {len(skipped)} skipped)."
                                     f"{detail}")
    return PreparedData(train, val, skipped, str(data_path) if data_path else "demo trajectories")
