"""The Resolution Lab in a real browser: load a demo screenshot, mark an element, read the numbers."""
import json
import re
from pathlib import Path

import pytest

from lora_core.qwen.geometry import ImageSettings
from lora_core.analysis.resolution import element_report, preset_settings

PRESETS = {named.key: named for named in preset_settings(ImageSettings())}


def choose_dropdown(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def click_image_pixel(page, elem_id: str, x: float, y: float) -> None:
    """Click the displayed image at pixel (x, y) of the image file itself."""
    image = page.locator(f"#{elem_id} img").first
    image.wait_for()
    page.wait_for_function(f"(document.querySelector('#{elem_id} img') || {{}}).naturalWidth > 0")
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    box = image.bounding_box()
    # object-fit: contain — the picture may be letterboxed inside the element
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    left = box["x"] + (box["width"] - natural[0] * scale) / 2
    top = box["y"] + (box["height"] - natural[1] * scale) / 2
    page.mouse.click(left + x * scale, top + y * scale)


def row_numbers(page, setting: str) -> dict:
    row = page.locator(f'#lab-numbers tr[data-setting="{setting}"]')
    cells_text = row.locator('[data-field="cells"]').inner_text()
    return {
        "tokens": int(row.locator('[data-field="visual_tokens"]').inner_text().replace(",", "")),
        "cells": float(re.search(r"= ([\d.]+)", cells_text).group(1)),
        "verdict": row.locator('[data-field="verdict"]').inner_text(),
    }


def test_mark_an_element_and_read_token_cells(page, app_server, screenshot_path):
    page.wait_for_selector("#lab-numbers")
    choose_dropdown(page, "lab-demo", "shared")
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('shared')")
    screens = json.loads((Path(app_server.log_path).parent / "demo" / "screens.json").read_text())
    shared = next(screen for screen in screens if screen["name"] == "shared")
    icon = next(e for e in shared["elements"] if e["label"] == "folder icon: Team offsite")
    x0, y0, x1, y1 = icon["box"]
    assert x1 - x0 == 200

    click_image_pixel(page, "lab-original", x0 + 1, y0 + 1)
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('first corner')")
    click_image_pixel(page, "lab-original", x1 - 1, y1 - 1)
    page.wait_for_selector('#lab-numbers [data-field="cells"]')

    for key in ("max520", "max768", "max1024"):
        shown = row_numbers(page, key)
        geom = PRESETS[key].geometry(1080, 2400)
        expected = element_report(geom, icon["box"])
        assert shown["tokens"] == geom.visual_tokens
        # a click lands on a screen pixel, a few image pixels from the exact corner
        assert shown["cells"] == pytest.approx(expected.cells, rel=0.08)
        assert shown["verdict"] == ("lost" if shown["cells"] < 1 else "blurry" if shown["cells"] < 4 else "ok")
    assert row_numbers(page, "max520")["verdict"] == "blurry"
    assert row_numbers(page, "max1024")["verdict"] == "ok"
    # each view is the model's image (resized W×H) enlarged to 960 px high, labelled with its size and tokens
    for index, key in enumerate(("max520", "max768", "max1024")):
        geom = PRESETS[key].geometry(1080, 2400)
        page.wait_for_function(f"(document.querySelector('#lab-view-{index} img') || {{}}).naturalWidth > 0")
        natural = page.locator(f"#lab-view-{index} img").first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural == [round(geom.resized_width * 960 / geom.resized_height), 960], key
        assert f"{geom.resized_width}×{geom.resized_height}, {geom.visual_tokens:,} tokens" in \
            page.locator(f"#lab-view-{index}").inner_text(), key
    page.screenshot(path=str(screenshot_path("resolution-lab.png")), full_page=True)


def test_click_point_marks_every_view(page):
    page.wait_for_selector("#lab-numbers")
    page.get_by_label("click point").check()
    click_image_pixel(page, "lab-original", 540, 1200)
    page.wait_for_selector("#lab-numbers tr[data-setting='max520'] td:nth-last-child(2)")
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('click point')")
    header = page.locator("#lab-numbers thead").inner_text()
    assert "point's cell" in header


def test_small_demo_element_is_lost_at_520(page):
    page.wait_for_selector("#lab-numbers")
    choose_dropdown(page, "lab-demo", "search_results")
    page.wait_for_function("document.querySelector('#lab-status').innerText.includes('search_results')")
    choose_dropdown(page, "lab-element", "folder icon: Sales")
    page.wait_for_selector('#lab-numbers [data-field="verdict"]')
    assert row_numbers(page, "max520")["verdict"] == "lost"
