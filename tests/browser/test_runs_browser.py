"""The Runs tab in a real browser.

- Demo mode (the Space): the stored runs are listed with progress bars, their curves replay, two of them compare,
  and the playground answers with two of them side by side on the embedded model; the launch bar and the live
  list fit the first screen at 1440×900.
- Locally: start a short run, watch its curve appear, compare it with a second run.
"""
import re

import pytest

RUN_TIMEOUT = 240_000
STORED_RUNS = 3


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    from tests.server import AppServer

    server = AppServer(tmp_path_factory.mktemp("demo-workspace"), "--demo")
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture
def demo_page(browser, demo_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(demo_server.url)
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_function(f"() => document.querySelectorAll('#runs-table tbody tr').length === {STORED_RUNS}")
    yield page
    context.close()


def choose(page, elem_id: str, name) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=name).first.click()


def train_points(page, where: str) -> list[int]:
    return page.eval_on_selector_all(f"{where} polyline[data-series=train]",
                                     "lines => lines.map(l => Number(l.dataset.points))")


def test_demo_first_screen_holds_the_launch_bar_and_the_live_list(demo_page):
    page = demo_page
    for selector in ("#runs-launch", "#runs-table tbody tr:first-child"):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] + box["height"] <= 900, (selector, box)
    assert page.locator("#runs-table .run-progress[data-fraction='1.0000']").count() == STORED_RUNS
    assert "30/30" in page.locator("#runs-table .run-progress-text").first.inner_text()
    note = page.locator("#run-diagnosis [data-field=eval-expectation]")
    assert note.get_attribute("data-embedded") == "true" and "random weights" in note.inner_text()


def test_demo_replays_a_stored_curve(demo_page):
    page = demo_page
    page.wait_for_selector("#run-curve polyline[data-series=train]")
    full = train_points(page, "#run-curve")[0]
    page.click("#runs-replay-selected")  # on a busy 2-core machine the queue may hold the click for seconds
    page.wait_for_function(
        "full => { const l = document.querySelector('#run-curve polyline[data-series=train]');"
        " return l && Number(l.dataset.points) < full; }", arg=full, timeout=60_000)
    page.wait_for_function(
        "full => { const l = document.querySelector('#run-curve polyline[data-series=train]');"
        " return l && Number(l.dataset.points) === full; }", arg=full, timeout=60_000)


def test_demo_compares_and_replays_two_stored_runs(demo_page):
    page = demo_page
    page.get_by_role("tab", name="Compare 2–4 runs").click()
    choose(page, "runs-compare", re.compile("lr 5e-3, r 8"))
    choose(page, "runs-compare", re.compile("lr 1e-3, r 8"))
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelectorAll('#compare-curves polyline[data-series=train]').length"
                           " === 2", timeout=30_000)
    assert page.locator("#compare-metrics tbody tr").count() == 2
    lr_row = page.locator('#compare-config tr[data-key="training.sft.learning_rate"]')
    assert "0.005" in lr_row.inner_text() and "0.001" in lr_row.inner_text()
    page.wait_for_selector("#compare-gallery img", timeout=30_000)
    full = max(train_points(page, "#compare-curves"))
    page.click("#runs-replay")
    page.wait_for_function(
        "full => [...document.querySelectorAll('#compare-curves polyline[data-series=train]')]"
        ".some(l => Number(l.dataset.points) < full)", arg=full, timeout=20_000)


def test_demo_playground_answers_with_two_runs_side_by_side(demo_page, screenshot_path):
    page = demo_page
    page.get_by_role("tab", name="Playground").click()
    choose(page, "play-demo-step", re.compile(r"step 2"))
    page.wait_for_function("() => document.querySelector('#play-task textarea, #play-task input').value.length > 0")
    choose(page, "play-source-B", re.compile("lr 1e-3, r 8"))
    page.click("#play-generate")
    for side in ("A", "B"):
        page.wait_for_selector(f"#play-result-{side} [data-state=done]", timeout=180_000)
        page.wait_for_selector(f"#play-image-{side} img", timeout=30_000)
        result = page.locator(f"#play-result-{side} .playground-result")
        assert result.locator("[data-field=raw-text]").count() == 1
        assert result.get_attribute("data-valid") in ("true", "false")
    assert "lr 1e-3, r 8" in page.locator("#play-result-B").inner_text()
    page.screenshot(path=str(screenshot_path("runs.png")), full_page=True)


# ----------------------------------------------------------------- locally: launch, watch, compare


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(str(value))
    box.press("Tab")


def open_config(page) -> None:
    """The config fields live in collapsed sections: open the run config and the optimisation group."""
    if not page.locator("#cfg-training-sft-max_steps input").is_visible():
        page.locator("#runs-config-section").get_by_text("Run config", exact=False).first.click()
        page.get_by_text("optimisation", exact=True).first.click()
    page.wait_for_selector("#cfg-training-sft-max_steps input", state="visible")


def launch(page, name: str, learning_rate: float) -> str:
    open_config(page)
    page.locator("#runs-name textarea, #runs-name input").first.fill(name)
    set_number(page, "cfg-training-sft-max_steps", 12)
    set_number(page, "cfg-training-sft-learning_rate", learning_rate)
    previous = page.locator("#runs-launch-message [data-field=launched]").get_attribute("data-run-id") \
        if page.locator("#runs-launch-message [data-field=launched]").count() else None
    page.click("#runs-launch")
    page.wait_for_function(
        "prev => { const m = document.querySelector('#runs-launch-message [data-field=launched]');"
        " return m && m.dataset.runId !== prev; }", arg=previous, timeout=120_000)
    return page.locator("#runs-launch-message [data-field=launched]").get_attribute("data-run-id")


def wait_finished(page, run_id: str) -> None:
    page.wait_for_function(
        "id => { const row = document.querySelector(`#runs-table tr[data-run-id='${id}']`);"
        " return row && ['finished', 'failed', 'stopped'].includes(row.dataset.state); }",
        arg=run_id, timeout=RUN_TIMEOUT)
    state = page.locator(f"#runs-table tr[data-run-id='{run_id}']").get_attribute("data-state")
    assert state == "finished", page.locator("#run-log").inner_text()[-2000:]


def test_start_watch_and_compare_two_runs(page):
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_selector("#runs-launch")
    first = launch(page, "browser-a", 0.005)

    # the curve of the selected (just launched) run appears and grows while it trains, under a progress bar
    page.wait_for_function(
        "id => { const line = document.querySelector(`#run-curve polyline[data-series=train][data-run='${id}']`);"
        " return line && Number(line.dataset.points) >= 3; }", arg=first, timeout=RUN_TIMEOUT)
    assert page.locator("#run-status-line").get_attribute("data-state") in ("training", "evaluating", "finished")
    assert page.locator(f"#runs-table tr[data-run-id='{first}'] .run-progress").count() == 1
    # what the trainer chose for the run on this CPU: fp32, packed, no checkpointing, nothing compiled
    setup = page.locator("[data-field=setup]").first.inner_text()
    assert "float32" in setup and "packed" in setup and "gradient checkpointing off" in setup, setup

    second = launch(page, "browser-b", 0.001)
    assert second != first
    wait_finished(page, first)
    wait_finished(page, second)

    page.get_by_role("tab", name="Compare 2–4 runs").click()
    choose(page, "runs-compare", re.compile("browser-a"))
    choose(page, "runs-compare", re.compile("browser-b"))
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelectorAll('#compare-curves polyline[data-series=train]').length === 2",
        timeout=60_000)
    assert page.locator("#compare-metrics tbody tr").count() == 2
    assert page.locator('#compare-config tr[data-key="training.lora.r"]').count() == 0  # diff-only by default
    page.uncheck("#runs-diff-only input")
    page.wait_for_selector('#compare-config tr[data-key="training.lora.r"]')
    assert page.locator("#compare-diagnosis [data-verdict]").count() >= 2
    page.wait_for_selector("#compare-gallery img", timeout=60_000)
