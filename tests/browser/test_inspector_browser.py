"""The Mask Inspector in a real browser: open a demo sample, read the coloured tokens, expand an image
chip, switch the label mode and see the counts change, then open a problem row from the audit."""



def open_tab(page):
    page.get_by_role("tab", name="Mask Inspector").click()
    page.wait_for_selector("#mi-tokens .kt")


def count(page, key: str) -> int:
    return int(page.locator(f'#mi-counts [data-count="{key}"]').inner_text().replace(",", ""))


def choose_sample(page, name: str) -> None:
    page.click("#mi-sample input")
    page.get_by_role("option", name=name).click()


def test_demo_sample_tokens_chip_and_mode_switch(page, screenshot_path, special):
    open_tab(page)
    choose_sample(page, "sample 3: open_sales_folder-step-03")
    page.wait_for_function("document.querySelector('#mi-counts') && "
                           "document.querySelectorAll('#mi-token-panel .mi-chip').length == 2")
    # coloured tokens: every class is present and they do not share a background
    colours = {}
    for css in ("ks", "ku", "kh", "kt", "kx"):
        tokens = page.locator(f"#mi-tokens span.{css}")
        assert tokens.count() > 0, css
        colours[css] = tokens.first.evaluate("el => getComputedStyle(el).backgroundColor")
    assert len(set(colours.values())) == 5
    assert "(trained)" in page.locator("#mi-tokens span.kt").first.get_attribute("title")

    # an image chip expands into its pads, and collapses again
    chip = page.locator("#mi-tokens .mi-chip").first
    pads = int(chip.get_attribute("data-n"))
    assert chip.get_attribute("data-id") == str(special.image_pad)
    assert f"id {special.image_pad}" in chip.get_attribute("title")
    assert pads > 0 and page.locator("#mi-tokens .mi-pads").count() == 0
    chip.click()
    page.wait_for_selector("#mi-tokens .mi-pads")
    assert page.locator("#mi-tokens .mi-pads > span").count() == pads
    assert f"id {special.image_pad}" in page.locator("#mi-tokens .mi-pads > span").first.get_attribute("title")
    page.locator("#mi-tokens .mi-pads > span").nth(3).click()
    assert "label −100" in page.locator("#mi-detail").inner_text()
    page.screenshot(path=str(screenshot_path("mask-inspector.png")), full_page=True)
    chip.click()
    assert page.locator("#mi-tokens .mi-pads").count() == 0

    # switching to mode all trains the history answers too; the changed tokens are marked
    trained_last = count(page, "trained")
    page.get_by_label("all — every assistant answer").check()
    page.wait_for_function("document.querySelector('#mi-counts').dataset.mode == 'all'")
    trained_all = count(page, "trained")
    assert trained_all > trained_last
    assert count(page, "changed") == trained_all - trained_last
    assert page.locator("#mi-tokens span.c").count() == trained_all - trained_last
    assert "Mode all" in page.locator("#mi-side-panel .mi-rule").inner_text()


def test_truncation_and_audit_row_opens_its_sample(page):
    open_tab(page)
    choose_sample(page, "sample 1: open_sales_folder-step-01")  # short enough to fit in 300 tokens
    page.wait_for_function("document.querySelectorAll('#mi-token-panel .mi-chip').length == 1")
    page.fill("#mi-max-length input", "300")
    page.press("#mi-max-length input", "Enter")
    page.wait_for_selector('#mi-side-panel [data-code="fits"]')
    page.click("#mi-audit-button")
    page.wait_for_selector("#mi-audit-summary")
    assert int(page.locator('#mi-audit-summary [data-total="truncated_target"]').inner_text()) > 0
    where = page.locator('#mi-problems [data-testid="cell-0-1"]').inner_text().strip()
    assert where != "sample 1"
    assert "target cut" in page.locator('#mi-problems [data-testid="cell-0-5"]').inner_text()
    page.locator('#mi-problems [data-testid="cell-0-5"]').click()
    page.wait_for_function(
        "w => document.querySelector('#mi-sample input').value.startsWith(w + ':')", arg=where)
    page.wait_for_selector("#mi-cut")
    assert page.locator('#mi-side-panel [data-code="target_cut"]').count() >= 1
