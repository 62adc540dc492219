"""Merge and export: the merged folder reloads with transformers' Auto classes and gives base + adapter's logits;
a 4-bit run is refused with the option named; the adapter zips."""
import json
import zipfile

import pytest

from lora_core.cli import main
from tests.test_predict import make_run


@pytest.fixture(scope="module")
def run(workspace, embedded_path):
    return make_run(workspace, embedded_path, run_id="20260101-000001-merge", seed=2)


@pytest.fixture(scope="module")
def merged(run, workspace):
    from lora_core.training.merge import merge_run

    return merge_run(workspace, run.run_id, "last")


def prompt_batch(embedded_path, workspace):
    from demo import ensure_demo_data
    from lora_core.data.samples import Sample
    from lora_core.training.data import run_encoder
    from lora_core.training.predict import generation_inputs
    from lora_core.training.presets import preset

    demo = ensure_demo_data(workspace)
    shot = demo.screen(demo.trajectories[0].steps[0].screenshot).path
    encoder = run_encoder(preset("tiny-cpu").config(), embedded_path)
    sample = Sample([{"role": "user", "content": [{"type": "image", "image": str(shot)},
                                                  {"type": "text", "text": "Open Sales"}]}], [shot])
    ids, geometries = encoder.prompt_ids(sample)
    return generation_inputs(encoder, sample, ids, geometries, token_types=True)


def test_merged_folder_reloads_and_gives_base_plus_adapter_logits(run, merged, embedded_path, workspace):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from lora_core.qwen.checkpoint import load_model

    out = run.path / "merged"
    assert merged["out"] == str(out) and (out / "model.safetensors").exists()
    batch = prompt_batch(embedded_path, workspace)
    with torch.no_grad():
        reference = PeftModel.from_pretrained(load_model(embedded_path), str(run.adapter_path)).eval()(**batch).logits
        reloaded = AutoModelForImageTextToText.from_pretrained(str(out)).eval()
        assert not any("lora" in name for name, _ in reloaded.named_parameters())
        logits = reloaded(**batch).logits
        base = load_model(embedded_path).eval()(**batch).logits
    assert torch.allclose(logits, reference, atol=1e-4), (logits - reference).abs().max()
    assert not torch.allclose(base, reference, atol=1e-3)  # the adapter changed something to merge


def test_merged_folder_carries_the_standard_processor_and_template(merged, run, embedded_path):
    from transformers import AutoTokenizer

    from lora_core.qwen.checkpoint import load_processor, read_model_info

    out = run.path / "merged"
    for name in ("chat_template.jinja", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
                 "video_preprocessor_config.json", "MERGED.json", "config.json", "generation_config.json"):
        assert (out / name).exists(), name
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"
    assert read_model_info(out).chat_template == read_model_info(embedded_path).chat_template
    assert load_processor(out).tokenizer.chat_template
    # AutoProcessor builds the video processor, which needs torchvision: bench/check_merge_device.py checks it
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == load_processor(embedded_path).image_token_id
    provenance = json.loads((out / "MERGED.json").read_text())
    assert provenance["run_id"] == run.run_id and provenance["image_settings"]["max_dim"] == 520
    assert provenance["base_model"] == "embedded"


def test_merge_cli_refuses_a_second_merge_into_the_same_folder(capsys, run, merged, workspace):
    code = main(["merge", "--run", run.run_id, "--checkpoint", "last", "--workspace", str(workspace), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "already exists" in err and err.count("\n") == 1


def test_a_4bit_run_is_refused_with_the_bf16_option_named(capsys, workspace, embedded_path):
    four = make_run(workspace, embedded_path, run_id="20260101-000002-qlora", seed=3, use_4bit=True)
    code = main(["merge", "--run", four.run_id, "--workspace", str(workspace), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "4-bit" in err and "--dtype bf16" in err and "bf16 base" in err
    assert not (four.path / "merged").exists()


def test_a_4bit_base_checkpoint_is_refused(tmp_path):
    from lora_core.training.merge import merge_problem
    from lora_core.training.presets import preset

    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"load_in_4bit": True}}))
    problem = merge_problem(preset("tiny-cpu").config(), tmp_path, "bf16")
    assert "stored in 4 bits" in problem and "bf16" in problem


def test_adapter_zip_holds_the_adapter_config_and_settings(run, tmp_path):
    from lora_core.training.merge import adapter_zip

    path = adapter_zip(run, "best", tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        note = json.loads(archive.read("RUN.json"))
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "config.yaml", "RUN.json"} <= names
    assert path.name.endswith("checkpoint-5.zip") and note["image_settings"]["max_dim"] == 520
