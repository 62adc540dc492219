"""Start-up: building the page imports no heavy library and draws no demo data; the demo is drawn once, after
launch, and the handlers that need it wait for it. Speed itself is measured in bench/bench_startup.py."""
import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "matplotlib")

BUILD = """
import json, sys
from pathlib import Path
import app
app.skip_gradio_stub_writing()
from ui.context import AppContext
ctx = AppContext(sys.argv[1], resolve_now=False)
with app.server_app_made_at_launch():
    blocks = app.build_app(ctx).queue()
import gradio.component_meta
print(json.dumps({
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(",")),
    "files": sorted(str(p.relative_to(ctx.workspace)) for p in Path(ctx.workspace).rglob("*") if p.is_file()),
    "stubs_skipped": gradio.component_meta.create_or_modify_pyi.__name__ == "<lambda>",
    "tabs": [block.label for block in blocks.blocks.values() if type(block).__name__ == "Tab"],
}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """What importing app and building the page, as `python app.py` does, loads and writes (in a new process)."""
    workspace = tmp_path_factory.mktemp("built")
    out = subprocess.run([sys.executable, "-c", BUILD, str(workspace), ",".join(HEAVY)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_page_imports_no_heavy_library(built):
    assert built["heavy"] == []


def test_building_the_page_draws_no_demo_data(built):
    assert not [name for name in built["files"] if name.endswith(".png") or name.startswith(("demo", "authoring"))]


def test_the_page_has_the_four_tabs(built):
    assert {"Resolution Lab", "Authoring", "Mask Inspector", "Runs"} <= set(built["tabs"])


def test_gradio_stub_writing_is_skipped(built):
    """If a gradio upgrade moves create_or_modify_pyi, app.skip_gradio_stub_writing no longer saves its second."""
    assert built["stubs_skipped"]


def test_the_static_demo_lists_match_the_drawn_demo(tmp_path):
    """The Lab and the playground name the demo's screens and steps before it is drawn: the same ones."""
    from demo import ensure_demo_data
    from demo.screens import SCREENS
    from ui.runs.playground import demo_step_fill, demo_steps

    drawn = ensure_demo_data(tmp_path)
    assert [name for name, _ in SCREENS] == [screen.name for screen in drawn.screens]
    assert [key for _, key in demo_steps()] == [f"{t.id}|{i}" for t in drawn.trajectories for i in range(len(t.steps))]

    class Ctx:
        demo, demo_mode = drawn, False

    last = drawn.trajectories[-1]
    path, _, task, _ = demo_step_fill(Ctx(), demo_steps()[-1][1])
    assert task == last.task and path == str(drawn.screen(last.steps[-1].screenshot).path)


def test_demo_is_drawn_once_when_two_threads_ask_at_once(tmp_path, monkeypatch):
    import demo
    from ui.context import AppContext

    calls = []
    draw = demo.ensure_demo_data

    def slow_draw(workspace):
        calls.append(threading.current_thread().name)
        time.sleep(0.3)  # the second thread asks while the first draws
        return draw(workspace)

    monkeypatch.setattr(demo, "ensure_demo_data", slow_draw)
    ctx = AppContext(tmp_path, resolve_now=False)
    got = []
    threads = [threading.Thread(target=lambda: got.append(ctx.demo)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]
    assert len(got[0].screens) == len(list((tmp_path / "demo" / "screens").glob("*.png"))) > 0


def test_a_failed_background_draw_is_retried_by_the_handler(tmp_path, monkeypatch):
    import demo
    from ui.context import AppContext

    draw, failures = demo.ensure_demo_data, []

    def fails_once(workspace):
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        return draw(workspace)

    monkeypatch.setattr(demo, "ensure_demo_data", fails_once)
    ctx = AppContext(tmp_path, resolve_now=False)
    ctx._prepare_demo()  # what the background thread does: the error is swallowed
    assert failures and ctx.demo.screens


def test_a_handler_needing_the_demo_works_right_after_launch(tmp_path, embedded_path):
    """The demo is drawn in the background after the first HTTP 200; a call that needs it at once waits for it."""
    from gradio_client import Client

    from lora_core.qwen.checkpoint import EMBEDDED_FOLDER
    from tests.server import AppServer

    shutil.copytree(embedded_path, tmp_path / EMBEDDED_FOLDER)  # the model is ready; the demo is not drawn
    server = AppServer(tmp_path)
    try:
        server.wait_until_up()
        result = Client(server.url, verbose=False).predict(api_name="/mask_inspect")
        assert result["samples"] > 0 and result["counts"]
        assert (tmp_path / "demo" / "manifest.json").exists()
    finally:
        server.stop()
