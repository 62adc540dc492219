"""LoRA coverage: the seed's target lists on the real module names, per entry and per group, before launch."""
import json
import subprocess
import sys

import pytest

from lora_core.analysis.coverage import (
    GROUPS,
    attached_modules,
    coverage_for_model,
    coverage_of,
    meta_skeleton,
    module_group,
    qwen3vl_2b_config,
)
from lora_core.training.config import LLM_TARGETS, SEED_VISION_TARGETS, VISION_TARGETS, load_yaml_text
from tests.conftest import ROOT
from tests.test_run_config import SEED_7_1, SEED_7_2


@pytest.mark.parametrize("name, group", [
    ("model.language_model.layers.3.self_attn.q_proj", "LLM attention"),
    ("model.language_model.layers.3.mlp.down_proj", "LLM MLP"),
    ("model.visual.blocks.0.attn.qkv", "vision attention"),
    ("model.visual.blocks.11.mlp.linear_fc2", "vision MLP"),
    ("model.visual.merger.linear_fc1", "merger / deepstack mergers"),
    ("model.visual.deepstack_merger_list.2.linear_fc2", "merger / deepstack mergers"),
    ("model.visual.patch_embed.proj", "other"),
    ("lm_head", "other"),
])
def test_module_groups(name, group):
    assert module_group(name) == group


def test_seed_llm_list_reaches_only_the_language_model(embedded_path):
    report = coverage_for_model(embedded_path, LLM_TARGETS, r=16)
    assert report.ok
    by_entry = {e.entry: e for e in report.entries}
    assert by_entry["q_proj"].groups == {"LLM attention": 2}  # two layers in the tiny model
    assert by_entry["down_proj"].groups == {"LLM MLP": 2}
    assert report.groups["LLM attention"]["modules"] == 8 and report.groups["LLM MLP"]["modules"] == 6
    for group in ("vision attention", "vision MLP", "merger / deepstack mergers"):
        assert report.groups[group] == {"modules": 0, "trainable": 0}
    assert report.trainable == sum(g["trainable"] for g in report.groups.values()) > 0


def test_seed_vision_entries_match_nothing_and_name_what_exists(embedded_path):
    config = load_yaml_text(SEED_7_2).config
    report = coverage_for_model(embedded_path, config.lora.target_modules, config.lora.r)
    unmatched = [e for e in report.entries if not e.matched]
    assert [e.entry for e in unmatched] == SEED_VISION_TARGETS
    assert len(report.errors) == 4 and not report.ok
    qkv = unmatched[0]
    assert "visual.attn.qkv" in report.errors[0] and "PEFT would drop it silently" in report.errors[0]
    assert qkv.suggestions[0].startswith("attn.qkv (2 modules: vision attention)")
    fc1 = next(e for e in unmatched if e.entry == "visual.mlp.fc1")
    assert any(s.startswith("mlp.linear_fc1") for s in fc1.suggestions[:2])
    # what PEFT really attaches: only the LLM, as if the vision entries were not there
    assert report.groups["vision attention"]["modules"] == 0


def test_real_vision_names_reach_the_vision_blocks(embedded_path):
    report = coverage_for_model(embedded_path, LLM_TARGETS + VISION_TARGETS, r=8)
    assert report.ok
    assert report.groups["vision attention"]["modules"] == 4  # qkv + proj in 2 blocks
    assert report.groups["vision MLP"]["modules"] == 4
    assert report.groups["merger / deepstack mergers"]["modules"] == 0


def test_all_linear_and_regex(embedded_path):
    everything = coverage_for_model(embedded_path, "all-linear")
    assert everything.ok and everything.groups["merger / deepstack mergers"]["modules"] == 4
    assert everything.groups["vision attention"]["modules"] == 4
    regex = coverage_for_model(embedded_path, r".*visual\.blocks\.\d+\.attn\.qkv")
    assert regex.ok and regex.groups["vision attention"]["modules"] == 2 and regex.trainable > 0
    nothing = coverage_for_model(embedded_path, r".*visual\.attn\.qkv")
    assert not nothing.ok and "regex" in nothing.errors[0]


def test_container_module_is_not_a_layer(embedded_path):
    report = coverage_for_model(embedded_path, ["q_proj", "visual.merger"])
    assert not report.ok and "not a layer LoRA can wrap" in report.errors[0]


def test_coverage_equals_what_peft_attaches_to_the_loaded_model(embedded_path):
    from peft import get_peft_model

    from lora_core.analysis.coverage import lora_config
    from lora_core.qwen.checkpoint import load_model

    targets = LLM_TARGETS + VISION_TARGETS
    report = coverage_for_model(embedded_path, targets, r=4, alpha=8)
    wrapped = get_peft_model(load_model(embedded_path), lora_config(targets, 4, 8))
    assert attached_modules(wrapped) == sorted(m for e in report.entries for m in e.modules)
    assert report.trainable == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)


def test_qwen3vl_2b_real_sizes_on_the_meta_device():
    """FACTS: 2.13 B parameters (vision 0.41 B); r=16 on the seven LLM projections adds 17.4 M."""
    config = qwen3vl_2b_config()
    skeleton = meta_skeleton(config)
    report = coverage_of(skeleton, LLM_TARGETS, 16, 32, "Qwen3-VL-2B (config)")
    assert report.trainable == 17_432_576
    assert report.total - report.trainable == pytest.approx(2.13e9, rel=0.005)
    assert report.groups["LLM attention"]["modules"] == 28 * 4 and report.groups["LLM MLP"]["modules"] == 28 * 3
    vision = sum(p.numel() for n, p in skeleton.named_parameters() if ".visual." in n)
    assert vision == pytest.approx(0.41e9, rel=0.01)


def test_qwen3vl_2b_special_ids_come_from_the_tokenizer(encoder):
    from lora_core.qwen.checkpoint import load_tokenizer, qwen_tokenizer_files

    config = qwen3vl_2b_config()
    tokenizer = load_tokenizer(str(qwen_tokenizer_files()))
    for key, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                       ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")):
        assert getattr(config, key) == tokenizer.convert_tokens_to_ids(token), key
    assert config.image_token_id == encoder.special.image_pad  # the embedded checkpoint shares the vocabulary


def coverage_cli(config_text, tmp_path, workspace):
    path = tmp_path / "run.yaml"
    path.write_text(config_text)
    return subprocess.run([sys.executable, "-m", "lora_core", "coverage", "--config", str(path), "--workspace",
                           str(workspace), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_lists_matches_and_exits_nonzero_on_an_unmatched_entry(tmp_path, workspace, embedded_path):
    good = coverage_cli(SEED_7_1, tmp_path, workspace)
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert result["ok"] and [e["entry"] for e in result["entries"]] == LLM_TARGETS
    assert set(result["groups"]) == set(GROUPS) and result["trainable_parameters"] > 0

    bad = coverage_cli(SEED_7_2, tmp_path, workspace)
    assert bad.returncode == 2
    assert "visual.attn.qkv" in bad.stderr.splitlines()[-1]
    listed = json.loads(bad.stdout)  # the per-entry listing still comes on stdout
    assert not listed["ok"] and {e["entry"]: e["matches"] for e in listed["entries"]}["visual.attn.qkv"] == 0


def test_cli_refuses_a_missing_config(tmp_path, workspace):
    out = subprocess.run([sys.executable, "-m", "lora_core", "coverage", "--config", str(tmp_path / "none.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "No config file" in out.stderr
