"""What an annotator waits for, measured in a real browser (Playwright driving Debian's chromium).

    python bench/bench_browser.py [--runs 10]

Starts `python app.py` on a new workspace, then takes the median of --runs of each of:
  click → marker   from the Playwright click to the first animation frame after the marker's SVG changed;
  Next             from the click on Next to the new step shown (its key in the canvas) with its image loaded;
  Save             from the click on Save to the step's row in the state table reading "done";
  Mark wrong       from the click on Mark wrong to the wrong action being edited and listed in the table;
                   both are shown ahead by the page, so each also has a "confirmed" row: to the server's answer
                   drawn (no row pending);
and in the Lab, click → marker and click → the numbers table redrawn. Times are read on the page's clock
(performance.now()), read at the click; waits poll once per animation frame (about 16 ms).
Prints the machine, its load average and a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from tests.server import AppServer  # noqa: E402

TRAJECTORY = "share_q3_report_with_alice"  # 7 steps
CANVAS = "#auth-screenshot .zc"
# the page shows no result ahead that the server has not yet answered (ui/static/authoring.js)
SETTLED = "!document.body.dataset.authPending && !document.querySelector('#auth-states tr[data-pending]')"

# page helpers: arm a marker watch, and resolve when a condition holds (checked every animation frame)
HELPERS = """() => {
window.benchArmMarker = (selector) => {
  window.benchPainted = null;
  const svg = document.querySelector(selector + ' svg.zc-marks');
  const observer = new MutationObserver(() => {
    if (!svg.querySelector('.zc-mark, .zc-box')) return;
    observer.disconnect();
    requestAnimationFrame(() => { window.benchPainted = performance.now(); });
  });
  observer.observe(svg, {childList: true, subtree: true});
  return performance.now();
};
window.benchUntil = (check, what) => new Promise((resolve, reject) => {
  const deadline = performance.now() + 60000;
  const tick = () => {
    if (check()) resolve(performance.now());
    else if (performance.now() > deadline) reject(new Error('not seen within 60 s: ' + what));
    else requestAnimationFrame(tick);
  };
  tick();
});
}"""


def page_now(page) -> float:
    return page.evaluate("performance.now()")


def until(page, condition: str, arg=None) -> float:
    """performance.now() at the first animation frame where the JS expression `condition` (of arg) is true."""
    return page.evaluate("([body, arg]) => window.benchUntil(() => Function('arg', 'return (' + body + ')')(arg), body)",
                         [condition, arg])


def canvas_loaded(selector: str) -> str:
    return (f"(() => {{ const root = document.querySelector('{selector}'); const img = root && root.querySelector('img');"
            " return img && img.complete && img.naturalWidth > 0 && root.dataset.loaded === img.getAttribute('src'); })()")


def status_of_here(page) -> str:
    return page.evaluate("(document.querySelector('#auth-states tr.auth-here') || {dataset: {}}).dataset.status || ''")


def press(page, selector: str) -> float:
    """Click a button (a DOM click, as a mouse click ends); returns the page's clock at the click."""
    return page.locator(selector).evaluate("button => { const at = performance.now(); button.click(); return at; }")


def click_marker(page, selector: str, x: int, y: int) -> float:
    page.locator(f"{selector} .zc-view").scroll_into_view_if_needed()
    point = page.evaluate(f"document.querySelector('{selector}').zoomCanvas.clientPoint({x}, {y})")
    started = page.evaluate(f"window.benchArmMarker('{selector}')")
    page.mouse.click(*point)
    page.wait_for_function("window.benchPainted !== null")
    return page.evaluate("window.benchPainted") - started


def open_authoring(page) -> None:
    page.get_by_role("tab", name="Authoring").click()
    page.wait_for_function("(document.querySelector('#auth-header') || {}).innerText && "
                           "document.querySelector('#auth-header').innerText.includes('Step 1')")
    page.click("#auth-trajectory input")
    page.get_by_role("option", name=__import__("re").compile(rf"^{TRAJECTORY} ")).click()
    page.wait_for_function(f"document.querySelector('#auth-header').innerText.includes('{TRAJECTORY}')")
    page.wait_for_function(canvas_loaded(CANVAS))


def measure(page, runs: int) -> dict[str, list[float]]:
    found = {name: [] for name in ("click", "click_saved", "next", "save", "save_confirmed", "wrong", "wrong_confirmed",
                                   "lab_click", "lab_table")}
    page.evaluate(HELPERS)
    # Lab (the first tab): element corners → a box marker, then the numbers for the new box
    page.wait_for_selector("#lab-numbers")
    page.wait_for_function(canvas_loaded("#lab-original .zc"))
    page.get_by_label("click point").check()
    page.wait_for_function("document.querySelector('#lab-original .zc').dataset.tool === 'point'")
    for run in range(runs + 1):
        before = page.locator("#lab-status").inner_text()
        started = page_now(page)
        spent = click_marker(page, "#lab-original .zc", 200 + 37 * run, 400 + 53 * run)
        done = until(page, "document.querySelector('#lab-status').innerText !== arg", before)
        if run:  # the first is a warm-up
            found["lab_click"].append(spent)
            found["lab_table"].append(done - started)
    print("lab done", file=sys.stderr, flush=True)
    open_authoring(page)
    page.click("#auth-next")  # step 2: a click on the files list
    page.wait_for_function("document.querySelector('#auth-header').innerText.includes('Step 2')")
    page.wait_for_function(canvas_loaded(CANVAS))
    for run in range(runs + 1):
        before = page.locator("#auth-coord").inner_text()
        started = page_now(page)
        spent = click_marker(page, CANVAS, 150 + 41 * run, 700 + 29 * run)
        saved = until(page, "document.querySelector('#auth-coord').innerText !== arg", before)
        if run:
            found["click"].append(spent)
            found["click_saved"].append(saved - started)
    print("clicks done", file=sys.stderr, flush=True)
    page.locator("#auth-save").scroll_into_view_if_needed()
    for run in range(runs + 1):  # Save, then Undo (not timed) to make the step a draft again
        started = press(page, "#auth-save")
        done = until(page, "(document.querySelector('#auth-states tr.auth-here') || {dataset: {}}).dataset.status === 'done'")
        confirmed = until(page, f"{SETTLED} && (document.querySelector('#auth-states tr.auth-here') || "
                                "{dataset: {}}).dataset.status === 'done'")
        if run:
            found["save"].append(done - started)
            found["save_confirmed"].append(confirmed - started)
        page.click("#auth-undo")
        page.wait_for_function("(document.querySelector('#auth-states tr.auth-here') || {dataset: {}}).dataset.status === 'draft'")
    wrong_rows = "document.querySelectorAll('#auth-states tr[data-part=\"wrong action\"]').length"
    print("save done", file=sys.stderr, flush=True)
    page.locator("#auth-wrong").scroll_into_view_if_needed()
    for run in range(runs + 1):  # Mark wrong, then Delete correction (not timed)
        corrections = page.evaluate(wrong_rows)
        started = press(page, "#auth-wrong")
        done = until(page, "document.querySelector('#auth-header').innerText.includes('editing wrong action') && "
                           "!!document.querySelector('#auth-states tr.auth-here[data-part=\"wrong action\"]')")
        confirmed = until(page, f"{SETTLED} && !!document.querySelector('#auth-states "
                                "tr.auth-here[data-part=\"wrong action\"][data-correction]:not([data-correction=\"\"])')")
        if run:
            found["wrong"].append(done - started)
            found["wrong_confirmed"].append(confirmed - started)
        page.click("#auth-delete-correction")
        page.wait_for_function(f"document.querySelector('#auth-header').innerText.includes('editing step') && "
                               f"{wrong_rows} === {corrections}")
    print("mark wrong done", file=sys.stderr, flush=True)
    position = 2
    for run in range(runs + 1):  # Next through the 7 steps, Previous back (not timed) at the end
        if position == 7:
            for back in range(6, 0, -1):
                page.click("#auth-prev")
                page.wait_for_function(f"document.querySelector('#auth-header').innerText.includes('Step {back} ')")
            position = 1
            page.wait_for_function(canvas_loaded(CANVAS))
        key = page.evaluate(f"document.querySelector('{CANVAS}').dataset.key")
        page.locator("#auth-next").scroll_into_view_if_needed()
        started = press(page, "#auth-next")
        done = until(page, f"document.querySelector('{CANVAS}').dataset.key !== arg && {canvas_loaded(CANVAS)}", key)
        position += 1
        if run:
            found["next"].append(done - started)
    return found


ROWS = [
    ("click → marker (Authoring): Playwright click to the frame after the marker's SVG changed", "click", 150),
    ("click → saved (Authoring): to the coordinate line showing the saved point", "click_saved", None),
    ("Next: click to the next step's key and its screenshot's `load`", "next", 250),
    ("Save: click to the step's row reading `done`", "save", 250),
    ("Save confirmed: to the server's answer drawn", "save_confirmed", None),
    ("Mark wrong: click to the wrong action being edited and listed", "wrong", 250),
    ("Mark wrong confirmed: to the server's answer drawn", "wrong_confirmed", None),
    ("click → marker (Lab)", "lab_click", 150),
    ("click → numbers table redrawn (Lab)", "lab_table", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    server = AppServer(scratch / "workspace")
    try:
        server.wait_until_up(timeout=180)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(120_000)
            page.goto(server.url)
            found = measure(page, args.runs)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"{machine()}; chromium {CHROMIUM}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print(f"\n| what | median of {args.runs} | min – max | target |\n| --- | --- | --- | --- |")
    for label, key, target in ROWS:
        values = found[key]
        print(f"| {label} | {statistics.median(values):.0f} ms | {min(values):.0f} – {max(values):.0f} ms | "
              f"{f'≤ {target} ms' if target else '—'} |")


if __name__ == "__main__":
    main()
