"""The embedded default and real-checkpoint loading, through transformers' own from_pretrained."""
import hashlib
import json
import shutil
import sys

import pytest

from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.qwen.checkpoint import (
    EMBEDDED_FOLDER,
    EMBEDDED_VERSION,
    build_embedded_checkpoint,
    ensure_embedded_checkpoint,
    load_model,
    load_processor,
    read_model_info,
    resolve_model_path,
)

QWEN25_PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
}
QWEN3_PREPROCESSOR = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16, "temporal_patch_size": 2,
    "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
}


def test_embedded_info_reads_the_processor_config(embedded_info):
    assert embedded_info.embedded and embedded_info.model_type == "qwen3_vl"
    assert embedded_info.settings == ImageSettings()
    assert "<|vision_start|><|image_pad|><|vision_end|>" in embedded_info.chat_template


def digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_embedded_build_is_deterministic(tmp_path, embedded_path):
    again = build_embedded_checkpoint(tmp_path / "again")
    assert digest(again) == digest(embedded_path)


def test_embedded_model_loads_and_runs_a_forward_pass(embedded_path, special):
    import torch
    from PIL import Image

    model = load_model(embedded_path)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    processor = load_processor(embedded_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is Sales?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (1080, 2400), "white")], return_tensors="pt")
    assert special.image_pad == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == special.image_pad).sum()) == geometry(1080, 2400).visual_tokens
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size == 151936 and torch.isfinite(logits).all()


# --- the embedded folder is a standard Qwen3-VL folder (version 2) --------------------------------


def assert_standard_folder(folder):
    assert json.loads((folder / "EMBEDDED.json").read_text())["version"] == EMBEDDED_VERSION == 2
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "Qwen3VLProcessor"
    assert json.loads((folder / "tokenizer_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if (folder / name).exists():  # no file names our image-only subclass, which peers cannot import
            assert "ImageOnly" not in (folder / name).read_text(), name
    video = json.loads((folder / "video_preprocessor_config.json").read_text())
    assert video["video_processor_type"] == "Qwen3VLVideoProcessor" and video["processor_class"] == "Qwen3VLProcessor"
    assert (video["patch_size"], video["merge_size"], video["temporal_patch_size"]) == (16, 2, 2)


def test_embedded_folder_names_the_standard_processor(embedded_path):
    assert_standard_folder(embedded_path)


def test_embedded_folder_is_not_rebuilt_when_current(embedded_path, monkeypatch):
    from lora_core.qwen import checkpoint

    def no_build(folder):
        raise AssertionError("the embedded checkpoint was rebuilt although it is current")

    monkeypatch.setattr(checkpoint, "build_embedded_checkpoint", no_build)
    workspace = embedded_path.parents[len(EMBEDDED_FOLDER.split("/")) - 1]
    assert ensure_embedded_checkpoint(workspace) == embedded_path


@pytest.fixture(scope="module")
def rebuilt_old_folder(tmp_path_factory, embedded_path):
    """An embedded folder from before version 2 (no "version", our subclass named, no video processor config),
    handed to ensure_embedded_checkpoint."""
    workspace = tmp_path_factory.mktemp("old-workspace")
    folder = workspace / EMBEDDED_FOLDER
    shutil.copytree(embedded_path, folder)
    (folder / "EMBEDDED.json").write_text(json.dumps({"name": "tiny Qwen3-VL (embedded, random weights)", "seed": 0}))
    (folder / "video_preprocessor_config.json").unlink()
    for name in ("processor_config.json", "tokenizer_config.json"):
        config = json.loads((folder / name).read_text())
        config["processor_class"] = "ImageOnlyQwen3VLProcessor"
        (folder / name).write_text(json.dumps(config))
    (folder / "left-over.txt").write_text("from the old build")
    assert ensure_embedded_checkpoint(workspace) == folder
    return folder


def test_an_old_embedded_folder_is_rebuilt(rebuilt_old_folder, embedded_path):
    assert_standard_folder(rebuilt_old_folder)
    assert not (rebuilt_old_folder / "left-over.txt").exists()  # a fresh folder, not patched in place
    assert digest(rebuilt_old_folder) == digest(embedded_path)
    assert sorted(p.name for p in rebuilt_old_folder.parent.iterdir()) == [rebuilt_old_folder.name]  # no staging left


def test_the_rebuilt_folder_loads_without_torchvision(rebuilt_old_folder, embedded_path):
    """Our loaders build the image-only processor (no video processor, so no torchvision) from the standard folder."""
    import importlib.util

    from PIL import Image
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    from lora_core.qwen.encoder import Encoder

    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules
    processor = load_processor(rebuilt_old_folder)
    assert isinstance(processor, Qwen3VLProcessor) and getattr(processor, "video_processor", None) is None
    encoder = Encoder.from_checkpoint(rebuilt_old_folder)
    assert encoder.special == Encoder.from_checkpoint(embedded_path).special
    assert encoder.checkpoint_settings == ImageSettings()
    image = Image.new("RGB", (1080, 2400), "white")
    geom = encoder.geometry(1080, 2400)
    values, grid = encoder.pixels(image, geom)
    assert [int(v) for v in grid[0]] == list(geom.grid_thw) and values.shape[0] == geom.visual_tokens * 4
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}], tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    assert int((inputs["input_ids"] == encoder.special.image_pad).sum()) == geom.visual_tokens
    assert "torchvision" not in sys.modules  # nothing above imported it


def fake_checkpoint(folder, embedded_path, model_type, preprocessor):
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(embedded_path / name, folder / name)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def test_qwen25_checkpoint_gives_its_own_geometry(tmp_path, embedded_path):
    folder = fake_checkpoint(tmp_path / "qwen25", embedded_path, "qwen2_5_vl", QWEN25_PREPROCESSOR)
    info = read_model_info(folder)
    assert (info.settings.patch_size, info.settings.token_cell_size) == (14, 28)
    assert (info.settings.min_pixels, info.settings.max_pixels) == (3136, 12845056)
    result = geometry(1080, 2400, info.settings)
    assert result.resized_width % 28 == 0 and result.visual_tokens == result.grid_thw[1] * result.grid_thw[2] // 4
    from PIL import Image

    processor = load_processor(folder)
    out = processor.image_processor(images=[Image.new("RGB", (1080, 2400))], return_tensors="np")
    assert list(out["image_grid_thw"][0]) == list(result.grid_thw)
    from lora_core.qwen.encoder import Encoder

    encoder = Encoder.from_checkpoint(folder)  # the encoder reads the same config: patch 14, its own budget
    assert encoder.checkpoint_settings == info.settings and encoder.geometry(1080, 2400) == result
    _, grid = encoder.pixels(Image.new("RGB", (1080, 2400)), result)
    assert [int(v) for v in grid[0]] == list(result.grid_thw)


def test_real_qwen3_checkpoint_layout(tmp_path, embedded_path):
    folder = fake_checkpoint(tmp_path / "qwen3", embedded_path, "qwen3_vl", QWEN3_PREPROCESSOR)
    assert read_model_info(folder).settings == ImageSettings()


def test_bad_model_arguments(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model_path(str(tmp_path), tmp_path)
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        resolve_model_path(str(tmp_path / "file.bin"), tmp_path)
    with pytest.raises(ValueError, match="No checkpoint folder"):
        resolve_model_path("./nowhere/at/all", tmp_path)
