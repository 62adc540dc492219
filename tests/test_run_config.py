"""RunConfig: the seed's own YAML examples load as written and round-trip; unknown keys are reported."""
import re

import pytest

from lora_core.training.config import (
    LLM_TARGETS,
    SEED_VISION_TARGETS,
    VISION_TARGETS,
    ConfigError,
    RunConfig,
    dump_yaml,
    effective_warmup,
    launch_problems,
    load_yaml_text,
    targets_from_text,
    targets_to_text,
)
from lora_core.training.presets import PRESETS, preset, uses_vision_lora, with_vision_lora

# Copied verbatim from the seed (field guide §7.1, §7.2, §8.6.2, and §8.3.1's "improved" block), comments included.
SEED_7_1 = """\
training:
  lora:
    enabled: true
    r: 16
    alpha: 32
    dropout: 0.05
    target_modules:
      - q_proj
      - k_proj
      - v_proj
      - o_proj
      - gate_proj
      - up_proj
      - down_proj
  
  gradient_checkpointing: true   # 启用梯度检查点，显著降低显存占用。它让部分中间激活值不保留，仅在反向传播时临时重算，适合大模型微调。
  use_4bit: false
  
  sft:
    learning_rate: 2.0e-4
    per_device_train_batch_size: 1
    gradient_accumulation_steps: 16
"""

SEED_7_2 = """\
training:
  lora:
    enabled: true
    r: 8  # 降低 rank 以节省显存
    alpha: 16
    dropout: 0.05
    target_modules:
      # LLM 部分
      - q_proj
      - k_proj
      - v_proj
      - o_proj
      - gate_proj
      - up_proj
      - down_proj
      # 视觉部分（根据实际模型调整）
      - visual.attn.qkv
      - visual.attn.proj
      - visual.mlp.fc1
      - visual.mlp.fc2
  
  gradient_checkpointing: true
  use_4bit: true  # 启用 4-bit 量化
  
  sft:
    learning_rate: 1.0e-4  # 适当降低学习率
    per_device_train_batch_size: 1
    gradient_accumulation_steps: 32  # 增加累积步数
"""

SEED_8_6_2 = """\
training:
  sft:
    max_length: 6200                    # 保持，multi-turn需要长上下文
    num_train_epochs: 5                  # 189样本：5个epochs足够（约945步）
    per_device_train_batch_size: 1      # 保持，VL模型显存限制
    gradient_accumulation_steps: 8       # 增大：有效batch size = 8
    learning_rate: 8.0e-5               # 189样本：适中学习率（比31样本高，比1000+样本低）
    warmup_steps: 19                    # 10% warmup: 189 * 5 / 8 / 10 ≈ 19步
    warmup_ratio: 0.1                   # 或使用warmup_ratio: 0.1
    logging_steps: 10                   # 每10步记录（189样本训练约95步/epoch）
    save_steps: 50                      # 每50步保存（约每0.5个epoch）
    save_total_limit: 3                  # 保留3个checkpoint
    eval_strategy: "steps"               # 添加验证集评估
    eval_steps: 50                      # 每50步评估验证集
    load_best_model_at_end: true       # 训练结束后加载最佳模型
    metric_for_best_model: "eval_loss"  # 使用验证集loss选择最佳模型
    weight_decay: 0.01                   # 添加权重衰减，防止过拟合
    bf16: false                          # V100不支持bf16
  
  # Memory optimization
  gradient_checkpointing: true
  use_4bit: true
  max_images_per_sample: 1              # 保持1张图片/样本
  
  # LoRA configuration
  lora:
    enabled: true
    r: 16                               # 189样本：保持r=16（数据量适中）
    alpha: 32                           # 2x r，保持
    dropout: 0.1                        # 增加dropout到0.1，防止过拟合
    target_modules:                     # 添加FFN层，提升表达能力
      - q_proj
      - k_proj
      - v_proj
      - o_proj
      - gate_proj                       # 添加FFN层
      - up_proj
      - down_proj
"""

SEED_8_3_1_IMPROVED = """\
training:
  sft:
    num_train_epochs: 5-10        # 小数据集需要更多轮次
    learning_rate: 5.0e-5         # 降低学习率，更稳定
    per_device_train_batch_size: 1
    gradient_accumulation_steps: 8  # 增大有效batch size
    warmup_steps: 5                # 小数据集需要warmup
    weight_decay: 0.01             # 添加权重衰减防过拟合
  
  lora:
    r: 8                          # 小数据集降低rank，减少过拟合风险
    alpha: 16
    dropout: 0.1                   # 增加dropout
    target_modules:                # 增加FFN层
      - q_proj
      - k_proj
      - v_proj
      - o_proj
      - gate_proj                  # 添加FFN层
      - up_proj
      - down_proj
"""


def test_seed_7_1_llm_only_loads_as_written():
    loaded = load_yaml_text(SEED_7_1)
    config = loaded.config
    assert loaded.unknown_keys == []
    assert (config.lora.enabled, config.lora.r, config.lora.alpha, config.lora.dropout) == (True, 16, 32, 0.05)
    assert config.lora.target_modules == LLM_TARGETS
    assert config.training.gradient_checkpointing is True and config.training.use_4bit is False
    assert config.sft.learning_rate == pytest.approx(2e-4)
    assert (config.sft.per_device_train_batch_size, config.sft.gradient_accumulation_steps) == (1, 16)
    assert config.effective_batch == 16


def test_seed_7_2_keeps_its_vision_entries_and_turns_4bit_on():
    config = load_yaml_text(SEED_7_2).config
    assert config.lora.target_modules == LLM_TARGETS + SEED_VISION_TARGETS  # loaded as written; coverage flags them
    assert (config.lora.r, config.lora.alpha) == (8, 16)
    assert config.training.use_4bit is True
    assert config.sft.learning_rate == pytest.approx(1e-4) and config.sft.gradient_accumulation_steps == 32


def test_seed_8_6_2_189_samples_loads_every_key():
    loaded = load_yaml_text(SEED_8_6_2)
    config, sft = loaded.config, loaded.config.sft
    assert loaded.unknown_keys == []
    assert (sft.max_length, sft.num_train_epochs, sft.gradient_accumulation_steps) == (6200, 5, 8)
    assert sft.learning_rate == pytest.approx(8e-5)
    assert (sft.warmup_steps, sft.warmup_ratio, sft.logging_steps, sft.save_steps, sft.save_total_limit) == \
        (19, 0.1, 10, 50, 3)
    assert (sft.eval_strategy, sft.eval_steps, sft.load_best_model_at_end, sft.metric_for_best_model) == \
        ("steps", 50, True, "eval_loss")
    assert (sft.weight_decay, sft.bf16) == (0.01, False)
    assert (config.training.gradient_checkpointing, config.training.use_4bit, config.training.max_images_per_sample) \
        == (True, True, 1)
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (16, 32, 0.1)
    # both warmup keys are set: the note says which one is used (transformers 5 has only warmup_steps)
    assert any("warmup_steps" in note and "warmup_ratio" in note for note in loaded.notes)
    assert effective_warmup(config) == 19


@pytest.mark.parametrize("text", [SEED_7_1, SEED_7_2, SEED_8_6_2])
def test_seed_examples_round_trip(text):
    first = load_yaml_text(text).config
    written = dump_yaml(first)
    second = load_yaml_text(written).config
    assert second == first
    assert dump_yaml(second) == written
    assert written.index("lora:") < written.index("sft:")  # the seed's layout: training.lora, training.sft, flags


def test_seed_8_3_1_range_value_gets_a_sentence():
    """§8.3.1 writes `num_train_epochs: 5-10` (a range for the reader, not a number)."""
    with pytest.raises(ConfigError, match=r"training\.sft\.num_train_epochs must be a number, got '5-10'"):
        load_yaml_text(SEED_8_3_1_IMPROVED)


def test_unknown_keys_are_reported_and_kept():
    loaded = load_yaml_text(SEED_7_1 + "  deepspeed: zero2\n" + "extra_top: 1\n")
    text = SEED_7_1.replace("learning_rate: 2.0e-4", "learning_rat: 2.0e-4")
    typo = load_yaml_text(text)
    assert loaded.unknown_keys == ["extra_top", "training.deepspeed"]
    assert typo.unknown_keys == ["training.sft.learning_rat"]
    assert "Did you mean training.sft.learning_rate?" in typo.messages()[0]
    written = dump_yaml(loaded.config)
    assert "deepspeed: zero2" in written and "extra_top: 1" in written
    assert load_yaml_text(written).unknown_keys == loaded.unknown_keys


@pytest.mark.parametrize("text, message", [
    ("training:\n  lora:\n    r: 0\n", r"training\.lora\.r must be at least 1"),
    ("training:\n  lora:\n    dropout: 1.5\n", r"training\.lora\.dropout must be at most"),
    ("training:\n  use_4bit: maybe\n", r"training\.use_4bit must be true or false"),
    ("training:\n  sft:\n    eval_strategy: sometimes\n", r"use one of: no, steps, epoch"),
    ("training:\n  lora:\n    target_modules: []\n", r"non-empty list"),
    ("training: [1, 2]\n", r"training must be a mapping"),
    ("training:\n  sft: {learning_rate: 1e-4\n", r"does not parse"),
    ("- just a list\n", r"YAML mapping"),
])
def test_bad_values_get_a_sentence(text, message):
    with pytest.raises(ConfigError, match=message):
        load_yaml_text(text)


def test_yaml_1_1_exponent_without_dot_is_a_number():
    """PyYAML reads `5e-5` as text; the user meant a number."""
    assert load_yaml_text("training:\n  sft:\n    learning_rate: 5e-5\n").config.sft.learning_rate == 5e-5


def test_regex_target_modules_round_trip():
    config = load_yaml_text('training:\n  lora:\n    target_modules: ".*language_model.*\\\\.(q|v)_proj"\n').config
    assert config.lora.target_modules == r".*language_model.*\.(q|v)_proj"
    assert load_yaml_text(dump_yaml(config)).config == config
    assert targets_from_text(targets_to_text(config.lora.target_modules)) == config.lora.target_modules


def test_presets_name_their_seed_section_and_load():
    keys = {p.key for p in PRESETS}
    assert {"31-samples", "189-samples", "llm-only", "llm-vision-4bit"} <= keys
    for item in PRESETS:
        assert item.section
        config = item.config()
        assert load_yaml_text(dump_yaml(config)).config == config
    assert "§8.6.2" in preset("189-samples").label and preset("189-samples").config().sft.learning_rate == 8e-5
    assert preset("31-samples").config().lora.r == 8 and preset("31-samples").config().sft.learning_rate == 5e-5
    vision = preset("llm-vision-4bit").config()
    assert vision.lora.target_modules == LLM_TARGETS + VISION_TARGETS and vision.training.use_4bit
    assert "visual.attn.qkv" in preset("llm-vision-4bit").note


def test_vision_toggle_replaces_the_seed_names_with_real_ones():
    config = load_yaml_text(SEED_7_2).config
    assert uses_vision_lora(config)
    fixed = with_vision_lora(config, True)
    assert fixed.lora.target_modules == LLM_TARGETS + VISION_TARGETS
    assert with_vision_lora(fixed, False).lora.target_modules == LLM_TARGETS
    assert not uses_vision_lora(with_vision_lora(fixed, False))


def test_4bit_is_refused_without_cuda_before_launch():
    config = load_yaml_text(SEED_8_6_2).config
    problems = launch_problems(config, cuda_available=False)
    assert problems and "use_4bit needs a CUDA GPU" in problems[0] and "slowly" in problems[0]
    assert launch_problems(config, cuda_available=True) == []


def test_load_best_needs_matching_save_and_eval_steps():
    config = RunConfig()
    config.sft.save_steps, config.sft.eval_steps = 25, 10
    assert "multiple of eval_steps" in launch_problems(config, False)[0]
    config.sft.save_steps = 30
    assert launch_problems(config, False) == []


# ----------------------------------------------------------------- training.sft pass-through (issue #8)

PASSTHROUGH_YAML = SEED_7_1 + """\
    optim: adafactor
    dataloader_num_workers: 2
    tf32: false
    torch_compile: true
    gradient_checkpointing_kwargs:
      use_reentrant: false
    adam_epsilon: 1e-7
"""


def test_training_arguments_fields_pass_through_and_round_trip():
    loaded = load_yaml_text(PASSTHROUGH_YAML)
    config = loaded.config
    assert loaded.unknown_keys == []
    assert config.passthrough == {"optim": "adafactor", "dataloader_num_workers": 2, "tf32": False,
                                  "torch_compile": True, "gradient_checkpointing_kwargs": {"use_reentrant": False},
                                  "adam_epsilon": 1e-7}  # YAML 1.1 reads 1e-7 as text; the field is a float
    assert config.get("training.sft.optim") == "adafactor"
    written = dump_yaml(config)
    assert load_yaml_text(written).config == config
    assert written.index("label_mode:") < written.index("optim: adafactor") < written.index("gradient_checkpointing:")


@pytest.mark.parametrize("key", ["output_dir", "logging_dir", "run_name", "label_names", "use_cpu",
                                 "remove_unused_columns", "prediction_loss_only", "deepspeed", "fsdp_config",
                                 "resume_from_checkpoint", "push_to_hub", "hub_model_id", "hub_token"])
def test_fields_the_run_sets_are_refused(key):
    with pytest.raises(ConfigError, match=rf"training\.sft\.{key} is set by the run, not the YAML"):
        load_yaml_text(f"training:\n  sft:\n    {key}: x\n")


def test_checkpointing_is_written_where_the_seed_writes_it():
    with pytest.raises(ConfigError, match=r"training\.sft\.activation_checkpointing is written "
                                          r"training\.gradient_checkpointing"):
        load_yaml_text("training:\n  sft:\n    activation_checkpointing: true\n")


@pytest.mark.parametrize("key", ["training.sft.optimm", "training.optim"])
def test_unknown_keys_suggest_a_training_arguments_field(key):
    section, name = key.rsplit(".", 1)
    text = "training:\n  sft:\n    optimm: sgd\n" if section == "training.sft" else f"training:\n  {name}: sgd\n"
    loaded = load_yaml_text(text)
    assert loaded.unknown_keys == [key] and loaded.config.passthrough == {}
    assert loaded.messages()[0].endswith("Did you mean training.sft.optim?")


def test_demo_accepts_only_its_listed_keys(tmp_path):
    from lora_core.training.registry import RunManager

    allowed = load_yaml_text(SEED_7_1 + "    adam_beta1: 0.85\n    warmup_steps: 3\n").config
    assert launch_problems(allowed, cuda_available=False, demo=True) == []
    outside = load_yaml_text(SEED_7_1 + "    optim: sgd\n    bf16: true\n").config
    problems = launch_problems(outside, cuda_available=False, demo=True)
    assert [p.split(" ")[0] for p in problems] == ["training.sft.bf16", "training.sft.optim"]
    assert all("cannot be changed in the public demo" in p for p in problems)
    assert launch_problems(outside, cuda_available=False) == []  # outside the demo both are fine
    assert RunManager(tmp_path, demo=True).preflight(outside)[:2] == problems


SEED_ONLY_SFT = "training:\n  sft:\n"


@pytest.mark.parametrize("written, expected", [
    ({"eval_strategy": '"no"'}, {"load_best_model_at_end": False, "metric_for_best_model": None,
                                  "save_strategy": "steps"}),
    ({"eval_strategy": "epoch"}, {"save_strategy": "epoch", "load_best_model_at_end": True}),
    ({"save_strategy": "epoch"}, {"eval_strategy": "epoch", "load_best_model_at_end": True}),
    ({"save_strategy": '"no"'}, {"eval_strategy": "steps", "load_best_model_at_end": False}),
    ({"eval_steps": 30}, {"save_steps": 30, "load_best_model_at_end": True}),
    ({"save_steps": 25}, {"eval_steps": 25, "load_best_model_at_end": True}),
    ({"save_steps": 25, "eval_steps": 10}, {"load_best_model_at_end": False}),
    ({"eval_strategy": '"no"', "load_best_model_at_end": "false", "metric_for_best_model": "eval_loss"},
     {"metric_for_best_model": "eval_loss"}),
])
def test_evaluation_defaults_follow_what_the_user_wrote(written, expected):
    text = SEED_ONLY_SFT + "".join(f"    {key}: {value}\n" for key, value in written.items())
    loaded = load_yaml_text(text)
    sft = loaded.config.sft
    assert {key: getattr(sft, key) for key in expected} == expected
    assert launch_problems(loaded.config, cuda_available=False) == []
    changed = [key for key, value in expected.items() if key not in written and value != getattr(RunConfig().sft, key)]
    assert all(any(note.startswith(f"training.sft.{key} is ") for note in loaded.notes) for key in changed)


@pytest.mark.parametrize("written, message", [
    ({"eval_strategy": '"no"', "load_best_model_at_end": "true"}, "load_best_model_at_end needs evaluation"),
    ({"eval_strategy": "steps", "save_strategy": "epoch", "load_best_model_at_end": "true"},
     r"needs save_strategy \(epoch\) to equal eval_strategy \(steps\)"),
    ({"save_steps": 25, "eval_steps": 10, "load_best_model_at_end": "true"}, "multiple of eval_steps"),
])
def test_contradictory_written_pairs_get_a_sentence(written, message):
    text = SEED_ONLY_SFT + "".join(f"    {key}: {value}\n" for key, value in written.items())
    config = load_yaml_text(text).config
    assert config.sft.load_best_model_at_end is True  # written values stay as written
    problems = launch_problems(config, cuda_available=False)
    assert len(problems) == 1 and re.search(message, problems[0])
