"""The Resolution Lab in a real browser: load a demo screenshot, mark an element, read the numbers."""
import json
import re
from pathlib import Path

import pytest

from lora_core.qwen.geometry import ImageSettings
from lora_core.analysis.resolution import element_report, preset_settings

PRESETS = {named.key: named for named in preset_settings(ImageSettings())}
LAB_CANVAS = "#lab-original .zc"


def choose_dropdown(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def wait_canvas(page, selector: str) -> None:
    """Until the canvas's screenshot has loaded (its marks and clicks map onto it from then on)."""
    page.wait_for_function(
        "s => { const root = document.querySelector(s); const img = root && root.querySelector('img');"
        " return img && img.complete && img.naturalWidth > 0 && root.dataset.loaded === img.getAttribute('src'); }",
        arg=selector)


def canvas_point(page, selector: str, x: float, y: float) -> tuple[float, float]:
    """Where pixel (x, y) of the canvas's image file is on the page, at the canvas's zoom and pan."""
    wait_canvas(page, selector)
    page.locator(f"{selector} .zc-view").scroll_into_view_if_needed()
    return tuple(page.evaluate("([s, x, y]) => document.querySelector(s).zoomCanvas.clientPoint(x, y)", [selector, x, y]))


def click_canvas(page, selector: str, x: float, y: float) -> None:
    page.mouse.click(*canvas_point(page, selector, x, y))


def row_numbers(page, setting: str) -> dict:
    row = page.locator(f'#lab-numbers tr[data-setting="{setting}"]')
    cells_text = row.locator('[data-field="cells"]').inner_text()
    return {
        "tokens": int(row.locator('[data-field="visual_tokens"]').inner_text().replace(",", "")),
        "cells": float(re.search(r"= ([\d.]+)", cells_text).group(1)),
        "verdict": row.locator('[data-field="verdict"]').inner_text(),
    }


def demo_screens(app_server) -> list[dict]:
    return json.loads((Path(app_server.log_path).parent / "demo" / "screens.json").read_text())


def test_mark_an_element_and_read_token_cells(page, app_server, screenshot_path):
    page.wait_for_selector("#lab-numbers")
    choose_dropdown(page, "lab-demo", "shared")
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('shared')")
    shared = next(screen for screen in demo_screens(app_server) if screen["name"] == "shared")
    icon = next(e for e in shared["elements"] if e["label"] == "folder icon: Team offsite")
    x0, y0, x1, y1 = icon["box"]
    assert x1 - x0 == 200

    click_canvas(page, LAB_CANVAS, x0, y0)
    page.wait_for_function(f"document.querySelector('{LAB_CANVAS} .zc-hint').innerText.includes('first corner')")
    assert page.locator(f"{LAB_CANVAS} .zc-box").count() == 0  # a corner, not yet a box
    click_canvas(page, LAB_CANVAS, x1 - 1, y1 - 1)
    page.wait_for_selector('#lab-numbers [data-field="cells"]')
    assert page.locator(f"{LAB_CANVAS} .zc-box").get_attribute("data-box") == f"{x0},{y0},{x1},{y1}"

    for key in ("max520", "max768", "max1024"):
        shown = row_numbers(page, key)
        geom = PRESETS[key].geometry(1080, 2400)
        expected = element_report(geom, icon["box"])
        assert shown["tokens"] == geom.visual_tokens
        assert shown["cells"] == pytest.approx(expected.cells, rel=0.08)
        assert shown["verdict"] == ("lost" if shown["cells"] < 1 else "blurry" if shown["cells"] < 4 else "ok")
    assert row_numbers(page, "max520")["verdict"] == "blurry"
    assert row_numbers(page, "max1024")["verdict"] == "ok"
    # each view is the model's image (resized W×H) enlarged to 960 px high, captioned with its size and tokens
    for index, key in enumerate(("max520", "max768", "max1024")):
        geom = PRESETS[key].geometry(1080, 2400)
        page.wait_for_function(f"(document.querySelector('#lab-view-{index} img') || {{}}).naturalWidth > 0")
        natural = page.locator(f"#lab-view-{index} img").first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural == [round(geom.resized_width * 960 / geom.resized_height), 960], key
        assert f"{geom.resized_width}×{geom.resized_height}, {geom.visual_tokens:,} tokens" in \
            page.locator(f"#lab-view-{index} figcaption").inner_text(), key
        assert page.locator(f"#lab-view-{index} svg rect").count() == 1  # the marked element, drawn over the view
    page.screenshot(path=str(screenshot_path("resolution-lab.png")), full_page=True)


def test_zoom_then_click_at_one_to_one_gives_the_same_point(page):
    page.wait_for_selector("#lab-numbers")
    page.get_by_label("click point").check()
    page.wait_for_function(f"document.querySelector('{LAB_CANVAS}').dataset.tool === 'point'")
    fit = float(page.locator(LAB_CANVAS).get_attribute("data-scale"))
    page.mouse.move(*canvas_point(page, LAB_CANVAS, 540, 1200))
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"s => parseFloat(document.querySelector('{LAB_CANVAS}').dataset.scale) > s", arg=fit)
    page.keyboard.press("1")  # 1:1 while the pointer is over the canvas
    page.wait_for_function(f"document.querySelector('{LAB_CANVAS}').dataset.scale === '1.0000'")
    page.evaluate(f"document.querySelector('{LAB_CANVAS}').zoomCanvas.centreOn(333, 1234)")
    click_canvas(page, LAB_CANVAS, 333, 1234)
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('click point (333, 1234)')")
    mark = page.locator(f"{LAB_CANVAS} .zc-mark[data-role='point']")
    assert (mark.get_attribute("data-x"), mark.get_attribute("data-y")) == ("333", "1234")
    header = page.locator("#lab-numbers thead").inner_text()
    assert "point: cell" in header
    page.keyboard.press("0")  # back to fit
    page.wait_for_function(f"f => Math.abs(parseFloat(document.querySelector('{LAB_CANVAS}').dataset.scale) - f) < 1e-3",
                           arg=fit)


def test_small_demo_element_is_lost_at_520(page):
    page.wait_for_selector("#lab-numbers")
    choose_dropdown(page, "lab-demo", "search_results")
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('search_results')")
    choose_dropdown(page, "lab-element", "folder icon: Sales")
    page.wait_for_selector('#lab-numbers [data-field="verdict"]')
    assert row_numbers(page, "max520")["verdict"] == "lost"


def test_upload_stops_naming_the_demo_and_says_why_no_elements(page, app_server):
    page.wait_for_selector("#lab-numbers")
    screen = next(s for s in demo_screens(app_server) if s["name"] == "shared")
    upload = Path(app_server.log_path).parent / "demo" / screen["image"]
    assert upload.is_file()
    page.locator("#lab-upload input[type=file]").set_input_files(str(upload))
    page.wait_for_function(f"document.querySelector('#lab-status').innerText.includes('{upload.name}')")
    assert page.locator("#lab-demo input").input_value() == ""
    assert "carries no element boxes" in page.locator("#lab-element").inner_text()
