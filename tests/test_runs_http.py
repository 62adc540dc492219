"""The Runs tab over HTTP (gradio_client): launch from the seed's YAML, read runs back, bad input gets a sentence."""
import time

import pytest

from lora_core.training.config import dump_yaml
from lora_core.training.presets import preset
from tests.test_run_config import SEED_7_2, SEED_8_6_2


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


def tiny_yaml(steps=6, learning_rate=5e-3):
    config = preset("tiny-cpu").config()
    config.sft.max_steps, config.sft.learning_rate = steps, learning_rate
    config.sft.eval_steps = config.sft.save_steps = steps
    config.evaluation.max_samples, config.evaluation.max_new_tokens = 1, 16
    return dump_yaml(config)


def wait_finished(client, run_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.predict(run_id, api_name="/run_view")
        if view["status"].get("state") in ("finished", "failed", "stopped"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"{run_id} did not finish: {view['status']}")


@pytest.mark.parametrize("text, message", [
    (SEED_8_6_2, "use_4bit needs a CUDA GPU"),  # refused before launch: bitsandbytes would crawl on the CPU
    (SEED_7_2.replace("use_4bit: true", "use_4bit: false"), "'visual.attn.qkv' matches no module"),
    ("training:\n  sft: {learning_rate: 1e-4\n", "does not parse"),
    ("training:\n  lora:\n    r: -4\n", "training.lora.r must be at least 1"),
])
def test_bad_configs_get_a_sentence_and_the_app_keeps_working(client, text, message):
    from gradio_client.exceptions import AppError

    before = client.predict(api_name="/runs_list")
    with pytest.raises(AppError, match=message):
        client.predict(text, "bad", api_name="/runs_launch")
    assert client.predict(api_name="/runs_list") == before  # nothing created, the app still answers


def test_unknown_run_id_is_a_sentence(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not a run id"):
        client.predict("../../etc", api_name="/run_view")


def test_two_runs_at_once_from_yaml(client):
    first = client.predict(tiny_yaml(), "http-a", api_name="/runs_launch")
    second = client.predict(tiny_yaml(learning_rate=1e-3), "http-b", api_name="/runs_launch")
    assert first != second
    listed = {run["run_id"]: run for run in client.predict(api_name="/runs_list")}
    assert {first, second} <= set(listed) and listed[first]["name"] == "http-a"
    assert listed[second]["state"] == "waiting"  # one run at a time on a CPU-only machine: it starts after the first
    for run_id in (first, second):
        view = wait_finished(client, run_id)
        assert view["status"]["state"] == "finished", view["status"]
        assert [m["step"] for m in view["metrics"] if m["kind"] == "train"] == list(range(1, 7))
        assert view["diagnosis"] and view["evaluation"]["state"] == "done"
