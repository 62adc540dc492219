"""Store → training samples → files: slicing, the split by trajectory, and the three export formats.

- `store_samples(store, options)` gives the native records (image paths absolute) that the other tabs
  can use directly, without writing files.
- `export_store(store, out_dir, fmt, options)` writes images/ plus JSONL in one of:
  `mai-ui` (the native format of docs/FORMATS.md), `llamafactory` (sharegpt with `<image>` placeholders
  and a dataset_info.json entry) or `swift` (ms-swift messages + images).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from lora_core.data.coords import parse_space
from lora_core.data.slicing import DEFAULT_SYSTEM_PROMPT, SliceOptions, SliceStep, sample_for_step, split_trajectories

from authoring.model import Correction, Step, Trajectory
from authoring.review import accepted_ids, copy_ids
from authoring.validate import validate_store

FORMATS = ("mai-ui", "llamafactory", "swift")
SPLITS = ("train", "val")
# LLaMA-Factory and ms-swift need user and assistant turns to alternate; history steps whose
# screenshot is dropped (max_images) get this user turn in those formats only.
OMITTED_SCREENSHOT_TEXT = "Screenshot omitted."
IMAGE_PLACEHOLDER = "<image>"


class ExportRefused(ValueError):
    """Export would write data that fails validation or cannot be written; the message says what to do."""


@dataclass
class ExportOptions:
    coords: str = "norm1000"
    max_dim: int | None = None  # abs-resized needs the resize settings; max_dim is the seed's pre-resize
    max_images: int = 1  # the seed's max_images_per_sample
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    val_ratio: float = 0.0
    seed: int = 42
    encoder: object | None = None  # the chosen model's encoder: abs-resized coordinates use its resized size
    include_corrections: bool = True
    only_accepted: bool = False  # only trajectories a reviewer accepted (authoring.review)

    def __post_init__(self):
        parse_space(self.coords)
        if not 0 <= self.val_ratio < 1:
            raise ValueError(f"The validation ratio must be at least 0 and below 1, got {self.val_ratio}.")
        if self.max_images < 1:
            raise ValueError("max_images must be at least 1: the current screenshot is always kept.")

    def slice_options(self) -> SliceOptions:
        return SliceOptions(self.max_images, self.coords, self.system_prompt, resized_frame(self.encoder, self.max_dim))


def resized_frame(encoder, max_dim: int | None = None):
    """The function giving a screenshot's size as the model sees it: the encoder's geometry (with the seed's
    max_dim under the native recipe), or None when no encoder is given (abs-resized is then refused)."""
    if encoder is None:
        return None
    if max_dim and encoder.recipe.name == "native":
        encoder = encoder.with_options(max_dim=max_dim)
    return encoder.geometry


# ---------------------------------------------------------------------------- samples


def _slice_step(store, step: Step) -> SliceStep:
    return SliceStep(str(store.image_path(step.image)), step.width, step.height, step.thinking, step.action)


def _metadata(trajectory: Trajectory, kind: str, position: int, width: int, height: int, action: dict, target,
              coords: str) -> dict:
    meta = {"source": trajectory.id, "kind": kind, "step_index": position, "task": trajectory.task,
            "coordinate_space": coords, "screen_size": [width, height], "action_abs": action}
    if target is not None:
        meta["target_box"] = list(target.box)
        meta["target_label"] = target.label
    return meta


def trajectory_samples(store, trajectory: Trajectory, steps: list[Step], corrections: list[Correction],
                       options: ExportOptions) -> list[dict]:
    """One sample per step, then one per recovery step of each correction (history holds the wrong step)."""
    slice_options = options.slice_options()
    chain = [_slice_step(store, step) for step in steps]
    samples = []
    for index, step in enumerate(steps):
        if step.info.status == "rejected":
            continue
        sample = sample_for_step(trajectory.task, chain, index, slice_options)
        sample = {"id": f"{trajectory.id}-step-{step.number:02d}", **sample,
                  "metadata": _metadata(trajectory, "step", index, step.width, step.height, step.action, step.target,
                                        options.coords)}
        samples.append(sample)
    if not options.include_corrections:
        return samples
    for correction in corrections:
        if correction.info.status == "rejected" or correction.position >= len(steps):
            continue
        if any(r.image is None for r in correction.recovery):
            continue  # still waiting for a screenshot (validation says so)
        step = steps[correction.position]
        wrong = SliceStep(chain[correction.position].image, step.width, step.height, correction.wrong_thinking,
                          correction.wrong_action, wrong=True)
        recovery = [SliceStep(str(store.image_path(r.image)), r.width, r.height, r.thinking, r.action)
                    for r in correction.recovery]
        history = chain[:correction.position] + [wrong] + recovery
        for number, rec in enumerate(correction.recovery):
            index = correction.position + 1 + number
            sample = sample_for_step(trajectory.task, history, index, slice_options)
            meta = _metadata(trajectory, "correction", correction.position, rec.width, rec.height, rec.action,
                             rec.target, options.coords)
            meta["correction"] = {"id": correction.id, "recovery_index": number,
                                  "wrong_action_abs": correction.wrong_action}
            samples.append({"id": f"{trajectory.id}-correction-{correction.id}-{number + 1}", **sample,
                            "metadata": meta})
    return samples


def exported_ids(store, options: ExportOptions) -> list[str]:
    """The trajectories an export takes: not rejected, not a second annotator's copy (it repeats its original),
    and accepted by a reviewer when only_accepted is set."""
    copies = copy_ids(store)
    accepted = accepted_ids(store) if options.only_accepted else None
    return [t.id for t in store.trajectories() if t.info.status != "rejected" and t.id not in copies
            and (accepted is None or t.id in accepted)]


def store_samples(store, options: ExportOptions | None = None) -> list[dict]:
    """Every sample of the store in the native format (docs/FORMATS.md), image paths absolute.

    Rejected trajectories, steps and corrections, agreement copies and (with only_accepted) trajectories not
    accepted are left out. Nothing is written.
    """
    options = options or ExportOptions()
    wanted = set(exported_ids(store, options))
    steps_by, corrections_by = {}, {}
    for step in store.steps():
        steps_by.setdefault(step.trajectory_id, []).append(step)
    for correction in store.corrections():
        corrections_by.setdefault(correction.trajectory_id, []).append(correction)
    samples = []
    for trajectory in store.trajectories():
        if trajectory.id not in wanted:
            continue
        samples += trajectory_samples(store, trajectory, steps_by.get(trajectory.id, []),
                                      corrections_by.get(trajectory.id, []), options)
    return samples


def correction_share(samples: list[dict]) -> float:
    if not samples:
        return 0.0
    return sum(1 for s in samples if s["metadata"]["kind"] == "correction") / len(samples)


def split_by_trajectory(trajectory_ids: list[str], val_ratio: float, seed: int) -> dict[str, list[str]]:
    """Whole trajectories go to train or val (seed §8.6.4), exactly as the trainer splits them."""
    train, val = split_trajectories(trajectory_ids, val_ratio, seed)
    return {"val": val, "train": train}


# ---------------------------------------------------------------------------- formats


def _image_items(content) -> list:
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def to_native(sample: dict, image_name) -> dict:
    messages = []
    for message in sample["messages"]:
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": "image", "image": image_name(item["image"])} if item["type"] == "image" else item
                       for item in content]
        messages.append({**message, "content": content})
    return {"id": sample["id"], "messages": messages, "metadata": sample["metadata"]}


def to_placeholder_record(sample: dict, image_name, keep_loss: bool) -> dict:
    """messages with string contents, one <image> per image in order, user/assistant alternating."""
    turns: list[dict] = []
    images: list[str] = []
    for message in sample["messages"]:
        role, content = message["role"], message["content"]
        text = ""
        for item in _image_items(content):
            if item["type"] == "image":
                text += IMAGE_PLACEHOLDER
                images.append(image_name(item["image"]))
            else:
                text += item["text"]
        if role == "user" and turns and turns[-1]["role"] == "user":
            turns[-1]["content"] += "\n" + text if not text.startswith(IMAGE_PLACEHOLDER) else text
            continue
        if role == "assistant" and turns and turns[-1]["role"] == "assistant":
            turns.append({"role": "user", "content": OMITTED_SCREENSHOT_TEXT})
        turn = {"role": role, "content": text}
        if keep_loss and "loss" in message:
            turn["loss"] = message["loss"]
        turns.append(turn)
    return {"id": sample["id"], "messages": turns, "images": images, "metadata": sample["metadata"]}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def export_store(store, out_dir: Path, fmt: str, options: ExportOptions | None = None, progress=None,
                 dataset_name: str = "gui_agent") -> dict:
    """Validate, slice, split and write. Refuses (ExportRefused) on validation problems or a non-empty folder.

    progress(done, total, what) is called while samples are written.
    """
    options = options or ExportOptions()
    if fmt not in FORMATS:
        raise ExportRefused(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportRefused(f"{out_dir} is not empty; export into a new or empty folder.")
    problems = validate_store(store, trajectory_ids=set(exported_ids(store, options)))
    if problems:
        raise ExportRefused(f"{len(problems)} validation problem(s), first: {problems[0]}. "
                            "Fix them or mark those records rejected, then export again.")
    samples = store_samples(store, options)
    if not samples:
        if options.only_accepted:
            raise ExportRefused("There is nothing to export: no trajectory has been accepted by a reviewer yet.")
        raise ExportRefused("There is nothing to export: the store has no trajectory that is not rejected.")
    split = split_by_trajectory([s["metadata"]["source"] for s in samples], options.val_ratio, options.seed)
    val_ids = set(split["val"])

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "images").mkdir()
    copied: dict[str, str] = {}

    def image_name(absolute: str) -> str:
        if absolute not in copied:
            name = f"images/{Path(absolute).name}"
            shutil.copyfile(absolute, out_dir / name)
            copied[absolute] = name
        return copied[absolute]

    records = {"train": [], "val": []}
    for done, sample in enumerate(samples, start=1):
        if fmt == "mai-ui":
            record = to_native(sample, image_name)
        else:
            record = to_placeholder_record(sample, image_name, keep_loss=fmt == "swift")
        records["val" if sample["metadata"]["source"] in val_ids else "train"].append(record)
        if progress and (done % 50 == 0 or done == len(samples)):
            progress(done, len(samples), "samples")
    files = {}
    for split_name in SPLITS:
        if records[split_name] or split_name == "train":
            path = out_dir / f"{split_name}.jsonl"
            _write_jsonl(path, records[split_name])
            files[split_name] = path.name
    notes = []
    if fmt == "llamafactory":
        info = {}
        for split_name, file_name in files.items():
            info[f"{dataset_name}_{split_name}"] = {
                "file_name": file_name, "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"},
            }
        (out_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        files["dataset_info"] = "dataset_info.json"
        notes.append("LLaMA-Factory trains every assistant turn unless mask_history is true; set mask_history: true "
                     "so history (and the wrong step of each correction) is never trained.")
    if fmt in ("llamafactory", "swift"):
        from authoring.peer_files import llamafactory_yaml, peer_recipe, sizing_notes, swift_command

        recipe = peer_recipe(fmt, options.encoder)
        model = str(options.encoder.checkpoint_path) if options.encoder is not None and \
            options.encoder.checkpoint_path else "Qwen/Qwen3-VL-2B-Instruct"
        if fmt == "llamafactory":
            names = {split_name: f"{dataset_name}_{split_name}" for split_name in files if split_name in SPLITS}
            (out_dir / "train_lora.yaml").write_text(llamafactory_yaml(recipe, names, model), encoding="utf-8")
            files["train_yaml"] = "train_lora.yaml"
        else:
            (out_dir / "swift_sft.sh").write_text(swift_command(recipe, files, model), encoding="utf-8")
            files["swift_command"] = "swift_sft.sh"
        notes += sizing_notes(recipe, options.encoder, [tuple(s["metadata"]["screen_size"]) for s in samples])
        from lora_core.data.images import image_warnings

        for absolute in copied:  # the peer reads the raw file: EXIF orientation and 16-bit depth are not applied
            notes += image_warnings(Path(absolute), recipe.title or recipe.name)
        notes.append(f"History turns whose screenshot was dropped are preceded by a user turn "
                     f"{OMITTED_SCREENSHOT_TEXT!r} so user and assistant turns alternate, as this format requires.")
    if fmt == "swift":
        notes.append("Wrong steps keep \"loss\": false; train with --loss_scale last_round or keep the loss field.")
    corrections = sum(1 for s in samples if s["metadata"]["kind"] == "correction")
    summary = {
        "format": fmt, "only_accepted": options.only_accepted, "coords": options.coords, "max_dim": options.max_dim, "max_images": options.max_images,
        "out": str(out_dir), "files": files, "samples": len(samples), "train": len(records["train"]),
        "val": len(records["val"]), "corrections": corrections, "correction_share": round(corrections / len(samples), 4),
        "images": len(copied), "split": {**split, "seed": options.seed, "val_ratio": options.val_ratio}, "notes": notes,
    }
    (out_dir / "export.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
