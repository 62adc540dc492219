"""TrainingArguments built from a run config: pass-through keys reach it, its refusals name the key, and a seed
config that turns evaluation off builds and trains."""
import json
import subprocess
import sys

import pytest

from lora_core.training.config import ConfigError, RunConfig, launch_problems, load_yaml_text
from lora_core.training.run_folder import RunFolder
from lora_core.training.train import training_arguments
from tests.conftest import ROOT
from tests.test_run_config import PASSTHROUGH_YAML, SEED_7_1


def test_passthrough_keys_reach_training_arguments(tmp_path):
    config = load_yaml_text(PASSTHROUGH_YAML).config
    args = training_arguments(config, RunFolder(tmp_path), has_eval=True, cuda=False)
    assert (args.optim, args.dataloader_num_workers, args.tf32, args.torch_compile) == ("adafactor", 2, False, True)
    assert args.gradient_checkpointing_kwargs == args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.adam_epsilon == 1e-7
    assert args.learning_rate == pytest.approx(2e-4) and args.gradient_accumulation_steps == 16  # the seed's keys
    assert (args.output_dir, args.use_cpu, args.label_names) == (str(tmp_path), True, ["labels"])  # the run's


def test_without_passthrough_the_run_keeps_its_own_choices(tmp_path):
    args = training_arguments(RunConfig(), RunFolder(tmp_path), has_eval=True, cuda=False)
    assert (args.optim, args.dataloader_num_workers, args.torch_compile) == ("adamw_torch_fused", 0, False)
    # checkpointing auto: off until the run's trial step decides; no per-step host sync
    assert args.activation_checkpointing is False and args.include_num_input_tokens_seen == "no"
    assert args.logging_nan_inf_filter is False and args.bf16 is False  # bf16 auto on a CPU
    explicit = RunConfig()
    explicit.training.gradient_checkpointing = True
    assert training_arguments(explicit, RunFolder(tmp_path), has_eval=True, cuda=False).activation_checkpointing


@pytest.mark.parametrize("line, message", [
    ("optim: adamw_nonsense", r'training\.sft\.optim is "adamw_nonsense", which TrainingArguments refuses: '
                              r"adamw_nonsense is not a valid OptimizerNames"),
    ("dataloader_prefetch_factor: 2", r"training\.sft\.dataloader_prefetch_factor is 2, which TrainingArguments "
                                      r"refuses: .*dataloader_num_workers > 0"),
])
def test_a_refused_value_is_one_sentence_naming_its_key(tmp_path, line, message):
    config = load_yaml_text(SEED_7_1 + f"    {line}\n").config
    with pytest.raises(ConfigError, match=message) as refused:
        training_arguments(config, RunFolder(tmp_path), has_eval=True, cuda=False)
    assert "\n" not in str(refused.value)
    assert launch_problems(config, cuda_available=False) == [str(refused.value)]  # refused before a launch too


def test_a_run_owned_key_set_in_code_is_refused_too(tmp_path):
    config = RunConfig()
    config.set("training.sft.output_dir", "/elsewhere")
    with pytest.raises(ConfigError, match=r"training\.sft\.output_dir is set by the run"):
        training_arguments(config, RunFolder(tmp_path), has_eval=True, cuda=False)


@pytest.mark.parametrize("strategy", ['"no"', "epoch"])
def test_seed_yaml_choosing_only_eval_strategy_gives_valid_training_arguments(tmp_path, strategy):
    config = load_yaml_text(SEED_7_1 + f"    eval_strategy: {strategy}\n").config
    assert launch_problems(config, cuda_available=False) == []
    args = training_arguments(config, RunFolder(tmp_path), has_eval=True, cuda=False)
    assert args.eval_strategy == strategy.strip('"')
    assert args.load_best_model_at_end is (strategy == "epoch")
    if strategy == "epoch":
        assert args.save_strategy == "epoch"


EVAL_OFF_RUN = """\
model: embedded
training:
  lora:
    r: 8
    alpha: 16
  gradient_checkpointing: false
  max_dim: 520
  sft:
    max_steps: 2
    learning_rate: 5.0e-3
    logging_steps: 1
    eval_strategy: "no"
    optim: adamw_torch
evaluation:
  after_training: false
"""


def test_seed_yaml_with_evaluation_off_trains_a_tiny_run(tmp_path, workspace, embedded_path):
    folder = tmp_path / "runs" / "eval-off"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(EVAL_OFF_RUN)
    out = subprocess.run([sys.executable, "-m", "lora_core.train", "--config", str(folder / "config.yaml"),
                          "--workspace", str(workspace)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    status = json.loads((folder / "status.json").read_text())
    assert out.returncode == 0 and status["state"] == "finished", (status, out.stderr[-2000:])
    assert status["step"] == 2 and (folder / "adapter" / "adapter_config.json").exists()
    log = (folder / "train.log").read_text()
    assert "training.sft.load_best_model_at_end is false because eval_strategy is no" in log
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if m["kind"] == "train"] == [1, 2]
