"""`python -m lora_core predict` on the embedded model: the prompt as training builds it, the parsed answer, its
point in the screenshot's pixels, and one sentence for each kind of bad input."""
import json
import shutil

import pytest

from lora_core.cli import main
from lora_core.training.config import dump_yaml
from lora_core.training.presets import preset


def make_run(workspace, embedded_path, run_id="20260101-000000-fake", seed=1, use_4bit=False):
    """A finished run folder with a random (non-zero) adapter on the embedded model: adapter/ and checkpoint-5/."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lora_core.qwen.checkpoint import load_model
    from lora_core.training.data import run_encoder
    from lora_core.training.run_folder import RunFolder

    folder = RunFolder(workspace / "runs" / run_id)
    if (folder.adapter_path / "adapter_config.json").exists():
        return folder
    folder.path.mkdir(parents=True, exist_ok=True)
    config = preset("tiny-cpu").config()
    config.training.use_4bit = use_4bit
    config.evaluation.max_new_tokens = 12
    folder.config_path.write_text(dump_yaml(config), encoding="utf-8")
    torch.manual_seed(seed)
    model = get_peft_model(load_model(embedded_path), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(folder.adapter_path)
    shutil.copytree(folder.adapter_path, folder.path / "checkpoint-5")
    settings = run_encoder(config, embedded_path).settings.as_dict()
    folder.update_status(state="finished", name=run_id.rsplit("-", 1)[-1], best_checkpoint="checkpoint-5",
                         image_settings=settings)
    return folder


@pytest.fixture(scope="module")
def fake_run(workspace, embedded_path):
    return make_run(workspace, embedded_path)


@pytest.fixture(scope="module")
def screenshot(workspace):
    from demo import ensure_demo_data

    demo = ensure_demo_data(workspace)
    return demo.screen(demo.trajectories[0].steps[0].screenshot).path


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_prints_the_answer_parsed_and_placed(capsys, workspace, fake_run, screenshot, tmp_path):
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"thinking": "Open the drive first.", "action": {"action": "click",
                                                                                  "coordinate": [500, 500]}},
                                   {"answer": '<thinking>Then wait.</thinking><tool_call>{"name": "mobile_use", '
                                              '"arguments": {"action": "wait"}}</tool_call>'}]))
    code, out, err = cli(capsys, "predict", "--run", fake_run.run_id, "--image", str(screenshot), "--task",
                         "Open the Sales folder", "--history", str(history), "--workspace", str(workspace), "--json")
    assert code == 0, err
    result = json.loads(out)
    for key in ("run_id", "adapter", "image_settings", "raw_text", "thinking", "action", "point_abs_original",
                "valid", "problems"):
        assert key in result
    assert result["run_id"] == fake_run.run_id and result["adapter"].startswith("best (checkpoint-5")
    assert result["image_settings"]["max_dim"] == 520 and result["image_settings_flag"] is None
    assert result["history_steps"] == 2 and result["embedded_model"]
    # random weights: the answer is noise, and says so through valid/problems, never a crash
    assert isinstance(result["raw_text"], str) and result["valid"] is False and result["problems"]
    assert result["point_abs_original"] is None and result["action"] is None


def test_checkpoint_choices_and_the_resolution_flag(capsys, workspace, fake_run, screenshot):
    base = ["predict", "--run", fake_run.run_id, "--image", str(screenshot), "--task", "Open Sales",
            "--workspace", str(workspace), "--max-new-tokens", "4"]
    code, out, err = cli(capsys, *base, "--checkpoint", "last", "--max-dim", "768")
    assert code == 0, err
    result = json.loads(out)
    assert result["adapter"].startswith("last (adapter/") and result["image_settings"]["max_dim"] == 768
    assert "max_dim 520 → 768" in result["image_settings_flag"] and "§4.4" in result["image_settings_flag"]
    code, out, _ = cli(capsys, *base, "--checkpoint", "base")
    assert code == 0 and json.loads(out)["adapter"].startswith("base model")
    code, _, err = cli(capsys, *base, "--checkpoint", "7")
    assert code == 2 and "no checkpoint-7 (kept: 5)" in err


def test_the_prompt_is_the_training_prompt(workspace, embedded_path, screenshot):
    """The same messages slicing.sample_for_step makes for training, cut before the answer."""
    from lora_core.data.slicing import SliceOptions, SliceStep, sample_for_step
    from lora_core.training.data import run_encoder
    from lora_core.training.predict import HistoryStep, PredictRequest, prompt_sample

    config = preset("tiny-cpu").config()
    encoder = run_encoder(config, embedded_path)
    action = {"action": "click", "coordinate": [540, 1200]}
    request = PredictRequest(image=screenshot, task="Open Sales",
                             history=[HistoryStep(thinking="Tap the middle.", action_abs=action)])
    ours = prompt_sample(request, encoder, "norm1000", 1, SliceOptions().system_prompt)
    steps = [SliceStep(str(screenshot), 1080, 2400, "Tap the middle.", action),
             SliceStep(str(screenshot), 1080, 2400, "next", {"action": "wait"})]
    training = sample_for_step("Open Sales", steps, 1, SliceOptions(frame_of=encoder.geometry))
    assert ours.messages == training["messages"][:-1]


@pytest.mark.parametrize("case, needle", [
    ("missing run", "There is no run 'nope'"),
    ("escaping run", "escapes the workspace"),
    ("corrupt image", "not a readable image"),
    ("malformed history", "not valid JSON"),
    ("history not a list", "must be a JSON list"),
    ("history image escapes", "outside"),
    ("bad checkpoint", "not best, last, base or a step number"),
])
def test_bad_input_is_one_sentence_and_exit_2(capsys, workspace, fake_run, screenshot, tmp_path, case, needle):
    run, image, history, checkpoint = fake_run.run_id, screenshot, None, "best"
    if case == "missing run":
        run = "nope"
    elif case == "escaping run":
        run = str(workspace / "runs" / ".." / ".." / "elsewhere")
    elif case == "corrupt image":
        image = tmp_path / "broken.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\nthis is not the rest of a png")
    elif case == "malformed history":
        history = tmp_path / "h.json"
        history.write_text('[{"thinking": "x", "action": {')
    elif case == "history not a list":
        history = tmp_path / "h.json"
        history.write_text('{"thinking": "x"}')
    elif case == "history image escapes":
        history = tmp_path / "sub" / "h.json"
        history.parent.mkdir()
        history.write_text(json.dumps([{"answer": "x", "image": "../../etc/hostname"}]))
    elif case == "bad checkpoint":
        checkpoint = "newest"
    argv = ["predict", "--run", run, "--image", str(image), "--task", "Open Sales", "--workspace", str(workspace),
            "--checkpoint", checkpoint]
    if history:
        argv += ["--history", str(history)]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and not out
    assert err.count("\n") == 1 and needle in err, err


def test_draw_prediction_marks_click_and_swipe(screenshot):
    from lora_core.training.predict import draw_prediction

    click = draw_prediction(screenshot, {"action": {"action": "click", "coordinate": [500, 500]},
                                         "points_abs_original": {"coordinate": [540.0, 1200.0]}}, height=480)
    plain = draw_prediction(screenshot, {"action": None, "points_abs_original": {}}, height=480)
    assert click.size == plain.size and click.tobytes() != plain.tobytes()
    red = (214, 39, 40)
    x, y = 540 * 480 / 2400, 1200 * 480 / 2400
    ring = [click.getpixel((round(x + dx), round(y))) for dx in range(-12, 13)]
    assert red in ring
    swipe = draw_prediction(screenshot, {"action": {"action": "swipe", "direction": "up"},
                                         "points_abs_original": {}}, height=480)
    assert swipe.tobytes() != plain.tobytes()


def test_a_playground_job_runs_in_its_own_process_and_reports_a_sentence(workspace, fake_run, screenshot):
    """The app's path: a job folder keyed like a run, a process of its own, result.json or one sentence."""
    from lora_core.training.jobs import Jobs

    jobs = Jobs(workspace)
    request = {"image": str(screenshot), "task": "Open Sales", "history": [], "workspace": str(workspace),
               "run_id": fake_run.run_id, "checkpoint": "best", "max_new_tokens": 4}
    good = jobs.start("predict", request)
    bad = jobs.start("predict", {**request, "run_id": "nope"})
    done, failed = jobs.wait(good, timeout=240), jobs.wait(bad, timeout=240)
    assert done["state"] == "done" and done["result"]["run_id"] == fake_run.run_id
    assert done["pid"] != __import__("os").getpid()
    assert failed["state"] == "failed" and failed["message"].startswith("There is no run 'nope'")
