"""The Authoring tab in a real browser: click a step's point on the zoomable canvas, draw target boxes, save each
step's own state, author a correction, export, read it back."""
import json
import re
from pathlib import Path

from authoring.store import Editor, Store
from tests.browser.test_lab_browser import canvas_point, choose_dropdown, click_canvas, wait_canvas

CANVAS = "#auth-screenshot .zc"
# Save and Mark wrong are shown ahead (ui/static/authoring.js); this holds once the server's answer is drawn
SETTLED = "() => !document.body.dataset.authPending && !document.querySelector('#auth-states tr[data-pending]')"


def app_store(app_server) -> Store:
    """The app's own annotation store, opened from the test: what was really saved."""
    return Store(Path(app_server.log_path).parent / "authoring" / "annotations.sqlite")


def record_status_shown_ahead(page) -> None:
    """Record the edited row's status right after each click's own handlers (window.statusAtClick)."""
    page.evaluate("""() => { window.statusAtClick = [];
        document.addEventListener('click', () => window.statusAtClick.push(
            (document.querySelector('#auth-states tr.auth-here') || {dataset: {}}).dataset.status || ''), true); }""")


def element_box(app_server, screen: str, label: str):
    screens = json.loads((Path(app_server.log_path).parent / "demo" / "screens.json").read_text())
    shown = next(item for item in screens if item["name"] == screen)
    return next(e["box"] for e in shown["elements"] if e["label"] == label)


def wait_text(page, selector: str, needle: str) -> None:
    page.wait_for_function("([s, n]) => { const e = document.querySelector(s); return e && e.innerText.includes(n); }",
                           arg=[selector, needle])


def stored_point(page) -> tuple[int, int]:
    return tuple(map(int, re.search(r"abs-original \((\d+), (\d+)\)", page.locator("#auth-coord").inner_text()).groups()))


def click_and_wait_saved(page, x: int, y: int) -> tuple[int, int]:
    """Click image pixel (x, y); returns the point the server saved once the coordinate line shows it."""
    before = page.locator("#auth-coord").inner_text()
    click_canvas(page, CANVAS, x, y)
    page.wait_for_function("([s, b]) => { const root = document.querySelector(s), t = document.querySelector('#auth-coord').innerText;"
                           " return Number(root.dataset.acked) >= Number(root.dataset.sent) && t !== b && /abs-original/.test(t); }",
                           arg=[CANVAS, before])
    return stored_point(page)


def marks(page, role: str) -> list[tuple[int, int]]:
    return [tuple(int(float(v)) for v in pair) for pair in page.evaluate(
        "([s, r]) => [...document.querySelectorAll(`${s} .zc-mark[data-role='${r}']`)].map(m => [m.dataset.x, m.dataset.y])",
        [CANVAS, role])]


def state_of(page, step: int, part: str) -> str:
    return page.locator(f'#auth-states tr[data-step="{step}"][data-part="{part}"]').first.get_attribute("data-status")


def box_text(page) -> str:
    return page.locator("#auth-target-box textarea, #auth-target-box input").first.input_value()


def open_tab(page) -> None:
    page.get_by_role("tab", name="Authoring").click()
    page.wait_for_selector("#auth-shortcuts")
    wait_text(page, "#auth-header", "Step 1")


def choose_trajectory(page, trajectory_id: str, step: int = 1) -> None:
    page.click("#auth-trajectory input")
    page.get_by_role("option", name=re.compile(rf"^{trajectory_id} ")).click()
    wait_text(page, "#auth-header", trajectory_id)
    for number in range(2, step + 1):
        page.click("#auth-next")
        wait_text(page, "#auth-header", f"Step {number} of")
    page.wait_for_function("([s, t, p]) => { const key = (document.querySelector(s) || {dataset: {}}).dataset.key || '';"
                           " const [shown, position] = key.split('|'); return shown === t && position === String(p); }",
                           arg=[CANVAS, trajectory_id, step - 1])
    wait_canvas(page, CANVAS)


def test_author_a_correction_and_find_it_in_the_export(page, app_server, screenshot_path):
    open_tab(page)
    assert "mark wrong" in page.locator("#auth-shortcuts").inner_text()
    choose_trajectory(page, "share_q3_report_with_alice")  # not the first one: the wait below means something
    page.locator("#auth-header").click()  # focus off the dropdown, so plain keys are shortcuts
    page.keyboard.press("n")  # the shortcut for the next step
    wait_text(page, "#auth-header", "Step 2 of 7")

    # click inside the Sales row: the marker is drawn by the browser, the server saves the same pixel
    x0, y0, x1, y1 = element_box(app_server, "files_root", "row: Sales")
    x, y = x0 + 300, (y0 + y1) // 2 + 10
    sx, sy = click_and_wait_saved(page, x, y)
    scale = float(page.locator(CANVAS).get_attribute("data-scale"))
    assert abs(sx - x) <= 1 / scale and abs(sy - y) <= 1 / scale  # within one screen pixel at the fitted zoom
    nx, ny = map(int, re.search(r"norm1000 \((\d+), (\d+)\)", page.locator("#auth-coord").inner_text()).groups())
    assert (nx, ny) == (round(sx * 1000 / 1080), round(sy * 1000 / 2400))
    assert marks(page, "step") == [(sx, sy)]
    wait_text(page, "#auth-problems-box", "All checks pass")

    # mark the step wrong, place the wrong tap on Marketing, give recovery 1 its screenshot
    choose_dropdown(page, "auth-proposal", "I will click it myself")
    page.click("#auth-wrong")
    wait_text(page, "#auth-header", "editing wrong action")
    mx0, my0, mx1, my1 = element_box(app_server, "files_root", "row: Marketing")
    wx, wy = click_and_wait_saved(page, (mx0 + mx1) // 2, (my0 + my1) // 2)
    assert marks(page, "wrong") == [(wx, wy)] and marks(page, "step") == [(sx, sy)]  # the right point for comparison
    wait_text(page, "#auth-problems-box", "no screenshot")  # recovery 1 asks for the screen after the error
    choose_dropdown(page, "auth-after", "step 3's screenshot")
    thinking = page.locator("#auth-thinking textarea")
    thinking.fill("Marketing sits right under Sales and might hold the sales files, so I open Marketing.")
    thinking.press("Alt+s")  # the save shortcut works inside a text field
    page.wait_for_function("() => { const r = document.querySelector('#auth-states tr.auth-here');"
                           " return r && r.dataset.part === 'wrong action' && r.dataset.status === 'done'; }")
    wait_text(page, "#auth-problems-box", "All checks pass")

    # export and find the correction in the JSONL
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
    assert f'"coordinate": [{round(wx * 1000 / 1080)}, ' in wrong_turns[0]["content"]
    assert '"button": "back"' in first["messages"][-1]["content"]
    page.screenshot(path=str(screenshot_path("authoring.png")), full_page=True)
    for record in records:
        for message in record["messages"]:
            for item in message["content"] if isinstance(message["content"], list) else []:
                if item["type"] == "image":
                    assert (out / item["image"]).is_file()


def test_zoom_then_click_at_one_to_one_saves_the_same_pixel(page):
    open_tab(page)
    choose_trajectory(page, "open_sales_folder", step=2)
    fit = float(page.locator(CANVAS).get_attribute("data-scale"))
    assert fit < 0.5  # a 1080×2400 screenshot fitted into the view: several image pixels per screen pixel
    page.mouse.move(*canvas_point(page, CANVAS, 540, 1200))
    for _ in range(3):
        page.keyboard.press("+")
    page.wait_for_function(f"f => parseFloat(document.querySelector('{CANVAS}').dataset.scale) > f * 1.9", arg=fit)
    page.keyboard.press("1")
    page.wait_for_function(f"document.querySelector('{CANVAS}').dataset.scale === '1.0000'")
    page.evaluate(f"document.querySelector('{CANVAS}').zoomCanvas.centreOn(431, 1187)")
    assert click_and_wait_saved(page, 431, 1187) == (431, 1187)
    assert marks(page, "step") == [(431, 1187)]

    # drag to pan at 1:1: the image moves with the pointer, and clicks still land on the pixel under them
    before = page.evaluate(f"document.querySelector('{CANVAS}').zoomCanvas.offset")
    start = canvas_point(page, CANVAS, 431, 1187)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 60, start[1] - 40, steps=6)
    page.mouse.up()
    after = page.evaluate(f"document.querySelector('{CANVAS}').zoomCanvas.offset")
    assert round(after[0] - before[0]) == -60 and round(after[1] - before[1]) == -40
    assert stored_point(page) == (431, 1187)  # a drag is a pan, not a click
    assert click_and_wait_saved(page, 470, 1215) == (470, 1215)

    # wheel zoom beyond 1:1, then 0 fits again; the saved point is unchanged by zooming
    page.mouse.move(*canvas_point(page, CANVAS, 470, 1215))
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"parseFloat(document.querySelector('{CANVAS}').dataset.scale) > 1.2")
    assert click_and_wait_saved(page, 475, 1220) == (475, 1220)
    page.keyboard.press("0")
    page.wait_for_function(f"f => Math.abs(parseFloat(document.querySelector('{CANVAS}').dataset.scale) - f) < 1e-3",
                           arg=fit)


def test_draw_pick_and_type_a_target_box(page, app_server):
    open_tab(page)
    choose_trajectory(page, "create_archive_folder", step=2)
    page.get_by_label("the target box (drag or two corners)").check()
    page.wait_for_function(f"document.querySelector('{CANVAS}').dataset.tool === 'box'")

    # drag from one corner to the other
    page.mouse.move(*canvas_point(page, CANVAS, 100, 200))
    page.mouse.down()
    page.mouse.move(*canvas_point(page, CANVAS, 400, 300), steps=5)
    page.mouse.up()
    page.wait_for_function("() => { const e = document.querySelector('#auth-target-box textarea, #auth-target-box input');"
                           " return e && e.value.startsWith('100, 200'); }")
    x0, y0, x1, y1 = (float(v) for v in box_text(page).split(","))
    scale = float(page.locator(CANVAS).get_attribute("data-scale"))
    assert (x0, y0) == (100, 200) and abs(x1 - 401) <= 1 / scale + 1 and abs(y1 - 301) <= 1 / scale + 1
    assert page.locator(f"{CANVAS} rect.zc-box[data-role='target']").count() == 1

    # two clicks: opposite corners in either order
    click_canvas(page, CANVAS, 250, 160)
    wait_text(page, f"{CANVAS} .zc-hint", "first corner")
    click_canvas(page, CANVAS, 50, 60)
    page.wait_for_function("() => (document.querySelector('#auth-target-box textarea, #auth-target-box input') || {})"
                           ".value.startsWith('50, 60')")

    # a click outside the box is flagged
    page.get_by_label("the action's point").check()
    page.wait_for_function(f"document.querySelector('{CANVAS}').dataset.tool === 'point'")
    click_and_wait_saved(page, 900, 2000)
    wait_text(page, "#auth-problems-box", "misses its target")

    # pick one of the elements the screenshot knows, then type exact coordinates
    choose_dropdown(page, "auth-target-element", "button: New folder")
    expected = element_box(app_server, "files_root", "button: New folder")
    page.wait_for_function("t => (document.querySelector('#auth-target-box textarea, #auth-target-box input') || {})"
                           ".value === t", arg=", ".join(f"{v:g}" for v in expected))
    field = page.locator("#auth-target-box textarea, #auth-target-box input").first
    field.fill("10, 20, 300, 400")
    field.press("Enter")
    page.wait_for_function(f"(document.querySelector(\"{CANVAS} rect.zc-box\") || {{dataset: {{}}}}).dataset.box === '10,20,300,400'")
    field.fill("300, 20, 10, 400")
    field.press("Enter")
    wait_text(page, "body", "x2 must be greater than x1")  # one sentence in a toast; the box is kept
    assert page.locator(f"{CANVAS} rect.zc-box").get_attribute("data-box") == "10,20,300,400"


def test_save_marks_the_step_it_is_on_and_each_recovery_step_keeps_its_state(page, app_server):
    open_tab(page)
    choose_trajectory(page, "browse_shared_with_me", step=2)
    page.click("#auth-save")
    page.wait_for_function("() => (document.querySelector('#auth-states tr[data-step=\"2\"][data-part=\"step\"]') || "
                           "{dataset: {}}).dataset.status === 'done'")
    page.wait_for_function(SETTLED)
    assert state_of(page, 2, "step") == "done" and state_of(page, 1, "step") == "draft"
    steps = app_store(app_server).steps("browse_shared_with_me")
    assert [s.info.status for s in steps[:2]] == ["draft", "done"]  # saved in the store, not only shown

    page.click("#auth-wrong")  # the proposed neighbour; recovery 1 waits for its screenshot
    wait_text(page, "#auth-header", "editing wrong action")
    page.locator("#auth-editing").get_by_label("recovery 1", exact=True).check()
    wait_text(page, "#auth-header", "editing recovery 1")
    wait_text(page, f"{CANVAS} .zc-empty", "no screenshot yet")  # asked for, never the pre-error screenshot
    assert page.locator(f"{CANVAS} .zc-empty").is_visible()
    kind = page.locator("#auth-kind input").input_value()
    assert kind == "system_button"
    assert page.locator("#auth-button").is_visible()
    assert not page.locator("#auth-direction").is_visible() and not page.locator("#auth-text").is_visible()
    page.click("#auth-save")
    page.wait_for_function("() => (document.querySelector('#auth-states tr[data-step=\"2\"][data-part=\"recovery 1\"]') || "
                           "{dataset: {}}).dataset.status === 'done'")
    page.wait_for_function(SETTLED)
    assert state_of(page, 2, "recovery 1") == "done"
    assert state_of(page, 2, "wrong action") == "draft"
    assert state_of(page, 2, "recovery 2") == "draft"
    assert state_of(page, 2, "step") == "done"
    correction = app_store(app_server).corrections("browse_shared_with_me")[-1]
    assert correction.info.status == "draft" and [r.status for r in correction.recovery] == ["done", "draft"]

    page.reload()  # the states live in the store
    open_tab(page)
    choose_trajectory(page, "browse_shared_with_me")
    assert [state_of(page, 2, part) for part in ("step", "wrong action", "recovery 1")] == ["done", "draft", "done"]


def test_a_refused_save_comes_back_as_stored_with_its_sentence(page, app_server):
    open_tab(page)
    choose_trajectory(page, "search_for_sales")
    store = app_store(app_server)
    step = store.steps("search_for_sales")[0]
    store.edit("step", step.id, {"thinking": f"{step.thinking} (edited elsewhere)"}, step.info.version,
               Editor("bob", "another-session"), 1)  # the page still shows the older version

    record_status_shown_ahead(page)
    page.click("#auth-save")
    page.wait_for_function(SETTLED)
    assert page.evaluate("window.statusAtClick") == ["done"]  # shown at once, before the server answered
    assert state_of(page, 1, "step") == "draft"  # the answer: not saved, the stored state again
    warning = page.locator("#auth-notice .auth-warning").inner_text()
    assert "bob saved this step" in warning and "not applied" in warning
    assert app_store(app_server).steps("search_for_sales")[0].info.status == "draft"

    page.click("#auth-save")  # the page now shows bob's version: this Save is applied
    page.wait_for_function(SETTLED)
    assert state_of(page, 1, "step") == "done"
    assert app_store(app_server).steps("search_for_sales")[0].info.status == "done"
    assert page.locator("#auth-notice .auth-warning").count() == 0
