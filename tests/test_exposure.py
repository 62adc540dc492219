"""Exposure: an app served beyond this machine without --auth has a view-only Runs tab (refused over the API with a
sentence naming --auth USER:PASSWORD, said at start-up); over the API, on loopback too, a config names no server
path."""
from types import SimpleNamespace

import pytest

import app
from lora_core.training.config import dump_yaml
from lora_core.training.presets import preset

REFUSAL = "view-only"
FLAG = "--auth USER:PASSWORD"


def tiny_yaml(**changes) -> str:
    config = preset("tiny-cpu").config()
    config.sft.max_steps = config.sft.eval_steps = config.sft.save_steps = 2
    for path, value in changes.items():
        config.set(path, value)
    return dump_yaml(config)


@pytest.fixture(scope="module")
def exposed_server(tmp_path_factory):
    """`python app.py --host 0.0.0.0`, no --auth; reached at 127.0.0.1."""
    from tests.server import AppServer

    server = AppServer(tmp_path_factory.mktemp("exposed-workspace"), host="0.0.0.0")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exposed_client(exposed_server):
    from gradio_client import Client

    return Client(exposed_server.url, verbose=False)


def test_exposed_app_without_auth_launches_nothing_over_the_api(exposed_client, exposed_server):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as refused:
        exposed_client.predict(tiny_yaml(), "remote", api_name="/runs_launch")
    assert REFUSAL in str(refused.value) and FLAG in str(refused.value)
    with pytest.raises(AppError, match=REFUSAL):  # a server path is never even looked at
        exposed_client.predict(tiny_yaml(model="/etc"), "remote", api_name="/runs_launch")
    assert exposed_client.predict(api_name="/runs_list") == []
    runs = exposed_server.log_path.parent / "runs"
    assert not list(runs.glob("*/config.yaml"))  # no run folder, no process


@pytest.mark.parametrize("endpoint, args", [("/runs_stop", (None,)), ("/runs_kill", (None,)),
                                            ("/runs_evaluate", (None, 0))])
def test_exposed_app_without_auth_stops_kills_and_evaluates_nothing(exposed_client, endpoint, args):
    answer = exposed_client.predict(*args, api_name=endpoint)
    assert REFUSAL in answer and FLAG in answer


def test_exposed_app_says_so_at_start_up(exposed_server):
    log = exposed_server.log_path.read_text()
    assert REFUSAL in log and FLAG in log


def test_start_up_line_only_when_exposed_without_auth():
    assert app.exposure_line(True, None) and FLAG in app.exposure_line(True, None)
    assert app.exposure_line(True, [("alice", "secret")]) is None and app.exposure_line(False, None) is None


@pytest.mark.parametrize("changes, message", [
    ({"model": "/etc"}, "model '/etc' is a path outside the app's workspace"),
    ({"data.path": "/etc/passwd"}, "data.path '/etc/passwd' is outside the app's workspace"),
    ({"data.path": "../../../../../../../etc/passwd"}, "is outside the app's workspace"),
])
def test_server_paths_in_a_yaml_sent_over_the_api_are_refused_on_loopback(app_server, changes, message):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_server.url, verbose=False)
    before = client.predict(api_name="/runs_list")
    with pytest.raises(AppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client.predict(tiny_yaml(**changes), "paths", api_name="/runs_launch")
    assert client.predict(api_name="/runs_list") == before


def test_view_only_gallery_reads_only_the_run_folders(tmp_path):
    from ui.runs import ctx_path_allowed, path_problems

    workspace = tmp_path.resolve()
    shot = workspace / "runs" / "r1" / "shot.png"
    demo_shot = workspace / "demo" / "a.png"
    elsewhere = workspace / "elsewhere" / "b.png"
    for path in (shot, demo_shot, elsewhere):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    locked = SimpleNamespace(view_only=True, demo_mode=False, exposed=True, workspace=workspace, model_arg="embedded")
    assert ctx_path_allowed(locked, str(shot)) and ctx_path_allowed(locked, str(demo_shot))
    assert not ctx_path_allowed(locked, str(elsewhere)) and not ctx_path_allowed(locked, "/etc/hostname")
    local = SimpleNamespace(view_only=False, demo_mode=False, exposed=False, workspace=workspace, model_arg="embedded")
    assert ctx_path_allowed(local, str(elsewhere))  # on one's own machine, as before

    config = preset("tiny-cpu").config()
    config.model = "Qwen/Qwen3-VL-2B-Instruct"  # a hub id is no server path, but view-only loads none
    assert not path_problems(local, config, None, api=True)
    assert "hub id" in path_problems(locked, config, None, api=False)[0]
    config.model, config.data.path = str(workspace / "runs"), "../../data.jsonl"  # inside the workspace
    assert not path_problems(local, config, None, api=True)
