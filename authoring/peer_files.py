"""What an export writes beside the data so a peer trainer can use it at once: LLaMA-Factory's train YAML,
ms-swift's `swift sft` command, and notes on how the peer's image sizing differs from the recipe worked under."""
from __future__ import annotations

import shlex

from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes import make_recipe
from lora_core.qwen.recipes.nearest import PEER_KNOBS, nearest_setting

PEER_OF_FORMAT = {"llamafactory": "llamafactory", "swift": "ms-swift"}
# what our exports need from each peer: only the last answer trained (history and wrong steps never are)
EXPORT_DEFAULTS = {"llamafactory": {"mask_history": True}, "ms-swift": {"loss_scale": "last_round"}}


def peer_recipe(fmt: str, encoder):
    """The peer recipe the export is for: the working recipe's own options when it is that peer."""
    peer = PEER_OF_FORMAT[fmt]
    checkpoint = encoder.checkpoint_settings if encoder is not None else ImageSettings()
    if encoder is not None and encoder.recipe.name == peer:
        return encoder.recipe
    return make_recipe(peer, checkpoint, EXPORT_DEFAULTS[peer])


def llamafactory_yaml(recipe, dataset_names: dict[str, str], model: str) -> str:
    options = recipe.options
    lines = [
        "### written by the workbench's export: the llamafactory recipe's options",
        f"model_name_or_path: {model}",
        "stage: sft", "do_train: true", "finetuning_type: lora",
        "lora_target: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        "dataset_dir: .", f"dataset: {dataset_names['train']}",
    ]
    if "val" in dataset_names:
        lines.append(f"eval_dataset: {dataset_names['val']}")
    lines += [
        f"template: {options['template']}",
        f"mask_history: {str(options['mask_history']).lower()}",
        f"image_max_pixels: {options['image_max_pixels']}",
        f"image_min_pixels: {options['image_min_pixels']}",
        f"cutoff_len: {options['cutoff_len']}",
        "output_dir: saves/qwen3vl-lora", "per_device_train_batch_size: 1", "gradient_accumulation_steps: 8",
        "learning_rate: 1.0e-4", "num_train_epochs: 3.0", "bf16: true",
    ]
    return "\n".join(lines) + "\n"


def swift_command(recipe, files: dict[str, str], model: str) -> str:
    options = recipe.options
    env = " ".join(f"{name}={options[name]}" for name in ("IMAGE_MIN_TOKEN_NUM", "IMAGE_MAX_TOKEN_NUM"))
    words = ["swift", "sft", "--model", model, "--model_type", "qwen3_vl", "--train_type", "lora",
             "--dataset", files["train"]]
    if "val" in files:
        words += ["--val_dataset", files["val"]]
    words += ["--template", options["template"], "--loss_scale", options["loss_scale"],
              "--truncation_strategy", options["truncation_strategy"]]
    if options["max_length"] is not None:
        words += ["--max_length", str(options["max_length"])]
    return env + " " + " ".join(shlex.quote(word) for word in words) + "\n"


def sizing_notes(recipe, encoder, sizes: list[tuple[int, int]]) -> list[str]:
    """Per screenshot size: the working recipe's pads, the peer's, and the peer setting that comes nearest."""
    if encoder is None or encoder.recipe.name == recipe.name:
        return []
    knob = PEER_KNOBS[recipe.name][0]
    notes = []
    for width, height in sorted(set(sizes)):
        try:
            working = encoder.geometry(width, height).visual_tokens
            peer = recipe.geometry(width, height).visual_tokens
        except ValueError:
            continue
        nearest = nearest_setting(recipe, working, width, height)
        text = (f"{width}×{height}: {working} image pads under {encoder.recipe.describe()}, {peer} under "
                f"{recipe.describe()} ({peer - working:+d} per image).")
        if nearest is not None and peer != working:
            text += f" {knob}={nearest[0]} comes closest: {nearest[1]} pads."
        notes.append(text)
    return notes
