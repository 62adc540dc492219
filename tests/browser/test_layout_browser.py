"""Every tab at laptop sizes: nothing overflows sideways (the page, and every table's wrapper); in the Lab the
thumbnails are equal with full captions; in Authoring the upload zone and the buttons do not overlap.
Screenshots of both sizes are saved (docs/screenshots with UPDATE_SCREENSHOTS=1)."""
import re

import pytest

from tests.browser.test_lab_browser import LAB_CANVAS, click_canvas
from tests.browser.test_runs_browser import STORED_RUNS, choose, demo_server  # noqa: F401 (a fixture)

SIZES = [(1280, 800), (1440, 900)]

OVERFLOWS = """() => {
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const found = [];
  const container = document.querySelector('.gradio-container');
  if (wide(container)) found.push(`.gradio-container ${container.scrollWidth} > ${container.clientWidth}`);
  for (const table of document.querySelectorAll('table')) {
    if (table.offsetParent === null) continue;  // in a hidden tab or a closed accordion
    const wrapper = table.parentElement;
    if (wide(wrapper) || table.getBoundingClientRect().right > wrapper.getBoundingClientRect().right + 1)
      found.push(`${table.id || table.className}: ${wrapper.scrollWidth} > ${wrapper.clientWidth}`);
  }
  return found;
}"""


VISIBLE_TABLES = "() => [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null).length"


def sized(browser, url, size):
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return context, page


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def sized_page(request, browser, app_server):
    context, page = sized(browser, app_server.url, request.param)
    yield page, "{}x{}".format(*request.param)
    context.close()


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def sized_demo_page(request, browser, demo_server):
    """The app as the Space runs it (--demo): the Runs tab lists its stored runs."""
    context, page = sized(browser, demo_server.url, request.param)
    yield page, "{}x{}".format(*request.param)
    context.close()


def test_lab_fits_with_every_setting_and_all_marks(sized_page, screenshot_path):
    page, size = sized_page
    page.wait_for_selector("#lab-numbers")
    for box in page.locator("#lab-presets input[type=checkbox]").all():
        if not box.is_checked():
            box.check()
    page.get_by_label("Add a custom setting").check()
    page.wait_for_function("document.querySelectorAll('#lab-views figure').length === 6")  # MAX_VIEWS
    click_canvas(page, LAB_CANVAS, 120, 380)  # an element (two corners), then a point: every column shows
    click_canvas(page, LAB_CANVAS, 520, 560)
    page.wait_for_selector('#lab-numbers [data-field="cells"]')
    page.get_by_label("click point").check()
    page.wait_for_function(f"document.querySelector('{LAB_CANVAS}').dataset.tool === 'point'")
    click_canvas(page, LAB_CANVAS, 700, 1500)
    page.wait_for_selector('#lab-numbers [data-field="point-cell"]')
    page.screenshot(path=str(screenshot_path(f"lab-{size}.png")), full_page=True)
    assert page.evaluate(OVERFLOWS) == []
    figures = page.evaluate("""() => [...document.querySelectorAll('#lab-views figure')].map(f => {
        const c = f.querySelector('figcaption'), r = f.getBoundingClientRect();
        return {width: Math.round(r.width), clipped: c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1,
                label: c.innerText}; })""")
    assert len({f["width"] for f in figures}) == 1, figures  # equal thumbnails
    assert not any(f["clipped"] for f in figures)
    assert all("tokens" in f["label"] for f in figures)  # the caption is whole, down to its token count


def test_authoring_fits_and_nothing_overlaps(sized_page, screenshot_path):
    page, size = sized_page
    page.get_by_role("tab", name="Authoring").click()
    page.wait_for_selector("#auth-progress")
    page.wait_for_function("document.querySelector('#auth-header').innerText.includes('Step 1')")
    page.screenshot(path=str(screenshot_path(f"authoring-{size}.png")), full_page=True)
    assert page.evaluate(OVERFLOWS) == []
    times = page.evaluate("[...document.querySelectorAll('#auth-progress td.auth-time')].map("
                          "td => [td.innerText, td.scrollWidth <= td.clientWidth + 1])")
    assert times and all(fits and text.endswith("min") for text, fits in times)  # the time column is not clipped
    upload = page.locator("#auth-after-upload").bounding_box()
    for button in ("#auth-add-recovery", "#auth-drop-recovery", "#auth-delete-correction", "#auth-wrong"):
        other = page.locator(button).bounding_box()
        apart = (upload["x"] + upload["width"] <= other["x"] or other["x"] + other["width"] <= upload["x"]
                 or upload["y"] + upload["height"] <= other["y"] or other["y"] + other["height"] <= upload["y"])
        assert apart, f"the upload zone overlaps {button}"


def test_mask_inspector_fits_with_a_sample_and_the_audit(sized_page, screenshot_path):
    page, size = sized_page
    page.get_by_role("tab", name="Mask Inspector").click()
    page.wait_for_selector("#mi-tokens .kt")
    page.click("#mi-audit-button")
    page.wait_for_selector("#mi-audit-summary")
    page.wait_for_selector("#mi-problems table")
    page.screenshot(path=str(screenshot_path(f"mask-inspector-{size}.png")), full_page=True)
    assert page.evaluate(VISIBLE_TABLES) >= 2  # the audit's summary and its problem rows are checked
    assert page.evaluate(OVERFLOWS) == []


def test_runs_fits_with_the_stored_runs_and_a_comparison(sized_demo_page, screenshot_path):
    page, size = sized_demo_page
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_function(f"() => document.querySelectorAll('#runs-table tbody tr').length === {STORED_RUNS}")
    page.screenshot(path=str(screenshot_path(f"runs-{size}.png")), full_page=True)
    assert page.evaluate(OVERFLOWS) == []
    page.get_by_role("tab", name="Compare 2–4 runs").click()
    choose(page, "runs-compare", re.compile("lr 5e-3, r 8"))
    choose(page, "runs-compare", re.compile("lr 1e-3, r 8"))
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelectorAll('#compare-metrics tbody tr').length === 2")
    page.wait_for_selector("#compare-config tbody tr")
    page.screenshot(path=str(screenshot_path(f"runs-compare-{size}.png")), full_page=True)
    assert page.evaluate(VISIBLE_TABLES) >= 3  # the runs list, the config and the metrics
    assert page.evaluate(OVERFLOWS) == []
