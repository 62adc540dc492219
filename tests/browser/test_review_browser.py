"""The team panel in a real browser: the name is remembered, a trajectory is claimed, submitted, rejected with a
comment, seen back in the annotator's queue, resubmitted and accepted.

The panel is mounted in a small Blocks of its own (name box, panel, and a stand-in for the editor that shows
which trajectory the panel asked it to open), served from this process on a free port.
"""
from types import SimpleNamespace

import gradio as gr
import pytest

from authoring import review as desk
from authoring.demo import seed_demo
from authoring.store import Store
from demo import ensure_demo_data
from tests.server import free_port
from tests.test_review import finish
from ui.review import build_review_section, remember_annotator_name


@pytest.fixture
def panel(tmp_path, workspace):
    store = Store(tmp_path / "authoring" / "annotations.sqlite")
    seed_demo(store, ensure_demo_data(workspace))
    with gr.Blocks() as blocks:
        name = gr.Textbox(label="Annotator", elem_id="name")
        editor = gr.Markdown("nothing open", elem_id="editor")
        section = build_review_section(SimpleNamespace(store=store), name)
        section.on_open(lambda trajectory_id: f"editing {trajectory_id}", [], [editor])
        remember_annotator_name(blocks, name)
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", store=store)
    finally:
        blocks.close()


def wait_text(page, selector: str, needle: str) -> None:
    page.wait_for_function("([s, n]) => { const e = document.querySelector(s); return e && e.innerText.includes(n); }",
                           arg=[selector, needle])


def be(page, name: str) -> None:
    page.fill("#name textarea, #name input", name)
    page.locator("#name textarea, #name input").press("Tab")  # blur: the panel redraws for this name


def press(page, elem_id: str, expect: str) -> None:
    page.click(f"#{elem_id}")
    wait_text(page, "#review-message", expect)


def test_review_round_trip_in_the_browser(browser, panel):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(panel.url)
    be(page, "rita")
    page.get_by_text("Team: queue, review and agreement").click()
    page.locator("#review-role input").click()
    page.get_by_role("option", name="reviewer", exact=True).click()
    press(page, "review-join", "rita joined the team as reviewer")

    # the name comes back on the next visit, from the browser's memory
    be(page, "alice")
    page.goto("about:blank")
    page.goto(panel.url)
    page.wait_for_function("() => { const e = document.querySelector('#name textarea, #name input'); "
                           "return e && e.value === 'alice'; }")
    page.get_by_text("Team: queue, review and agreement").click()
    press(page, "review-join", "alice joined the team as annotator")
    wait_text(page, "#review-team", "rita (reviewer)")

    press(page, "review-claim", "is yours now")
    trajectory_id = desk.queue(panel.store, "alice")[0].trajectory_id
    wait_text(page, "#editor", f"editing {trajectory_id}")  # the panel asked the editor to open it
    press(page, "review-submit", "still draft")  # refused with its sentence; nothing changed
    assert desk.review(panel.store, trajectory_id).state == "open"
    finish(panel.store, trajectory_id, "alice")
    press(page, "review-submit", f"{trajectory_id} was submitted for review")

    be(page, "rita")
    page.click("#review-refresh")
    wait_text(page, "#review-pending", trajectory_id)
    page.fill("#review-comment textarea", "Step 1 should say why CloudDrive is the app.")
    press(page, "review-reject", "went back to alice with your comment")

    be(page, "alice")
    page.click("#review-refresh")
    row = page.locator(f"#review-queue tr[data-trajectory='{trajectory_id}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "returned"
    assert "Step 1 should say why CloudDrive is the app." in row.inner_text()
    press(page, "review-submit", "submitted for review")

    be(page, "rita")
    page.fill("#review-comment textarea", "")
    press(page, "review-accept", f"{trajectory_id} is accepted")
    assert desk.review(panel.store, trajectory_id).state == "accepted"
    assert desk.accepted_ids(panel.store) == {trajectory_id}
    wrap = page.evaluate("() => [...document.querySelectorAll('#review-root .review-table-wrap')]"
                         ".every(e => e.scrollWidth <= e.clientWidth)")
    assert wrap, "a review table overflows its wrapper at 1280 px"
    context.close()
