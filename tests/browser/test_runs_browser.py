"""The Runs tab in a real browser: start a short run, watch its curve appear, compare it with a second run."""
import re


RUN_TIMEOUT = 240_000


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(str(value))
    box.press("Tab")


def launch(page, name: str, learning_rate: float) -> str:
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


def test_start_watch_and_compare_two_runs(page, screenshot_path):
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_selector("#runs-launch")
    first = launch(page, "browser-a", 0.005)

    # the curve of the selected (just launched) run appears and grows while it trains
    page.wait_for_function(
        "id => { const line = document.querySelector(`#run-curve polyline[data-series=train][data-run='${id}']`);"
        " return line && Number(line.dataset.points) >= 3; }", arg=first, timeout=RUN_TIMEOUT)
    assert page.locator("#run-status-line").get_attribute("data-state") in ("training", "evaluating", "finished")

    second = launch(page, "browser-b", 0.001)
    assert second != first
    wait_finished(page, first)
    wait_finished(page, second)

    page.click("#runs-compare input")
    page.get_by_role("option", name=re.compile("browser-a")).click()
    page.click("#runs-compare input")
    page.get_by_role("option", name=re.compile("browser-b")).click()
    page.keyboard.press("Escape")

    page.wait_for_function(
        "() => document.querySelectorAll('#compare-curves polyline[data-series=train]').length === 2",
        timeout=60_000)
    assert page.locator("#compare-metrics tbody tr").count() == 2
    lr_row = page.locator('#compare-config tr[data-key="training.sft.learning_rate"]')
    assert lr_row.count() == 1 and "0.005" in lr_row.inner_text() and "0.001" in lr_row.inner_text()
    assert page.locator('#compare-config tr[data-key="training.lora.r"]').count() == 0  # diff-only by default
    page.uncheck("#runs-diff-only input")
    page.wait_for_selector('#compare-config tr[data-key="training.lora.r"]')
    assert page.locator("#compare-diagnosis [data-verdict]").count() >= 2
    page.wait_for_selector("#compare-gallery img", timeout=60_000)
    page.screenshot(path=str(screenshot_path("runs.png")), full_page=True)
