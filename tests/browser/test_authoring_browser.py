"""The Authoring tab in a real browser: click a step's point, author a correction, export, read it back."""
import json
import re
from pathlib import Path

from tests.browser.test_lab_browser import click_image_pixel


STEP_GREEN = (0, 170, 60)
WRONG_RED = (230, 20, 20)


def element_box(app_server, screen: str, label: str):
    screens = json.loads((Path(app_server.log_path).parent / "demo" / "screens.json").read_text())
    shown = next(item for item in screens if item["name"] == screen)
    return next(e["box"] for e in shown["elements"] if e["label"] == label)


def wait_pixel(page, elem_id: str, x: int, y: int, colour) -> None:
    """Wait until the displayed image file has `colour` at (x, y), read through a canvas once it has loaded."""
    page.wait_for_function(
        """([id, x, y, want]) => { const img = document.querySelector(`#${id} img`);
            if (!img || !img.complete || !img.naturalWidth) return false;
            const canvas = document.createElement('canvas'); canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const g = canvas.getContext('2d'); g.drawImage(img, 0, 0);
            const got = Array.from(g.getImageData(x, y, 1, 1).data).slice(0, 3);
            return got.every((v, i) => v === want[i]); }""",
        arg=[elem_id, x, y, list(colour)])


def click_loaded_image(page, elem_id: str, x: float, y: float) -> None:
    """click_image_pixel once the image has loaded (its natural size is known only then)."""
    page.wait_for_function("id => { const img = document.querySelector(`#${id} img`); "
                           "return img && img.complete && img.naturalWidth > 0; }", arg=elem_id)
    click_image_pixel(page, elem_id, x, y)


def wait_text(page, selector: str, needle: str) -> None:
    page.wait_for_function("([s, n]) => { const e = document.querySelector(s); return e && e.innerText.includes(n); }",
                           arg=[selector, needle])


def wait_changed(page, selector: str, before: str) -> None:
    """Wait until the element's abs-original text differs from `before` (progress timers ignored)."""
    page.wait_for_function(
        """([s, b]) => { const e = document.querySelector(s); const pick = t => (t.match(/abs-original [^|]*/) || [''])[0];
            return e && pick(e.innerText) !== '' && pick(e.innerText) !== pick(b) && !/\\d+\\.\\ds/.test(e.innerText); }""",
        arg=[selector, before])


def open_tab(page) -> None:
    page.get_by_role("tab", name="Authoring").click()
    page.wait_for_selector("#auth-shortcuts")
    wait_text(page, "#auth-header", "Step 1")


def choose_trajectory(page, trajectory_id: str) -> None:
    page.click("#auth-trajectory input")
    page.get_by_role("option", name=re.compile(rf"^{trajectory_id} ")).click()
    wait_text(page, "#auth-header", trajectory_id)


def test_author_a_correction_and_find_it_in_the_export(page, app_server, screenshot_path):
    open_tab(page)
    assert "mark wrong" in page.locator("#auth-shortcuts").inner_text()
    choose_trajectory(page, "share_q3_report_with_alice")  # not the first one: the wait below means something
    page.locator("#auth-header").click()  # focus off the dropdown, so plain keys are shortcuts
    page.keyboard.press("n")  # the shortcut for the next step
    wait_text(page, "#auth-header", "Step 2 of 7")

    # 1-3: click inside the Sales row, see the marker and the coordinate
    x0, y0, x1, y1 = element_box(app_server, "files_root", "row: Sales")
    x, y = x0 + 300, (y0 + y1) // 2 + 10
    before = page.locator("#auth-coord").inner_text()
    click_loaded_image(page, "auth-screenshot", x, y)
    wait_changed(page, "#auth-coord", before)
    shown = page.locator("#auth-coord").inner_text()
    sx, sy = map(int, re.search(r"abs-original \((\d+), (\d+)\)", shown).groups())
    assert abs(sx - x) <= 2 and abs(sy - y) <= 2
    nx, ny = map(int, re.search(r"norm1000 \((\d+), (\d+)\)", shown).groups())
    assert (nx, ny) == (round(sx * 1000 / 1080), round(sy * 1000 / 2400))
    wait_pixel(page, "auth-screenshot", sx, sy, STEP_GREEN)  # the marker's centre dot
    wait_text(page, "#auth-problems-box", "All checks pass")

    # 4: mark the step wrong, place the wrong tap on Marketing, keep the proposed recovery
    page.locator("#auth-proposal input").click()
    page.get_by_role("option", name="I will click it myself", exact=True).click()
    page.click("#auth-wrong")
    wait_text(page, "#auth-header", "editing wrong action")
    mx0, my0, mx1, my1 = element_box(app_server, "files_root", "row: Marketing")
    before = page.locator("#auth-coord").inner_text()
    click_loaded_image(page, "auth-screenshot", (mx0 + mx1) // 2, (my0 + my1) // 2)
    wait_changed(page, "#auth-coord", before)
    wrong_y = int(re.search(r"abs-original \(\d+, (\d+)\)", page.locator("#auth-coord").inner_text()).group(1))
    thinking = page.locator("#auth-thinking textarea")
    thinking.fill("Marketing sits right under Sales and might hold the sales files, so I open Marketing.")
    thinking.press("Alt+s")  # the save shortcut works inside a text field
    wait_text(page, "#auth-problems-box", "All checks pass")
    wait_pixel(page, "auth-screenshot", (mx0 + mx1) // 2, wrong_y, WRONG_RED)

    # 5: export and find the correction in the JSONL
    page.get_by_text("Validate and export the dataset").click()
    page.locator("#auth-export-box input[aria-label='Validation share of trajectories']").fill("0")
    page.click("#auth-export")
    page.wait_for_selector("#auth-export-path", timeout=60_000)
    out = Path(page.locator("#auth-export-path").inner_text())
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["metadata"]["kind"] == "correction"
            and r["metadata"]["source"] == "share_q3_report_with_alice"
            and any(m.get("loss") is False and "Marketing sits right under Sales" in m["content"] for m in r["messages"])]
    assert len(mine) == 2, "the authored correction (back, then the right click) is not in the export"
    first = next(r for r in mine if r["metadata"]["correction"]["recovery_index"] == 0)
    wrong_turns = [m for m in first["messages"] if m.get("loss") is False]
    assert len(wrong_turns) == 1
    assert f'"coordinate": [{round((mx0 + mx1) / 2 * 1000 / 1080)}, ' in wrong_turns[0]["content"]
    assert '"button": "back"' in first["messages"][-1]["content"]
    page.screenshot(path=str(screenshot_path("authoring.png")), full_page=True)
    for record in records:
        for message in record["messages"]:
            for item in message["content"] if isinstance(message["content"], list) else []:
                if item["type"] == "image":
                    assert (out / item["image"]).is_file()
