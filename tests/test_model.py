"""The embedded default and real-checkpoint loading, through transformers' own from_pretrained."""
import hashlib
import json
import shutil

import pytest

from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.qwen.checkpoint import (
    build_embedded_checkpoint,
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


def test_embedded_build_is_deterministic(tmp_path, embedded_path):
    again = build_embedded_checkpoint(tmp_path / "again")
    digest = lambda path: hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert digest(again) == digest(embedded_path)


def test_embedded_model_loads_and_runs_a_forward_pass(embedded_path):
    import torch
    from PIL import Image

    model = load_model(embedded_path)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    processor = load_processor(embedded_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is Sales?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (1080, 2400), "white")], return_tensors="pt")
    assert int((inputs["input_ids"] == 151655).sum()) == geometry(1080, 2400).visual_tokens
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == 151936 and torch.isfinite(logits).all()


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
