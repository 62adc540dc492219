"""The shared recipe selector in a real browser: switching the trainer changes the Lab's pad count and the
Inspector's trained tokens, and the choice survives a reload (browser local storage)."""


def choose_recipe(page, label: str) -> None:
    page.click("#recipe-name input")
    page.get_by_role("option", name=label).click()


def recipe_pads(page) -> int:
    cell = page.locator('#lab-table tr[data-setting="recipe"] [data-field="visual_tokens"], '
                        'tr[data-setting="recipe"] [data-field="visual_tokens"]').first
    return int(cell.inner_text().replace(",", ""))


def wait_for_recipe_pads(page, value: int) -> None:
    page.wait_for_function(
        "v => [...document.querySelectorAll('tr[data-setting=\"recipe\"] [data-field=\"visual_tokens\"]')]"
        ".some(el => el.innerText.replace(/,/g, '') == String(v))", arg=value)


def test_recipe_switch_changes_lab_pads_and_inspector_counts(page):
    page.wait_for_selector('tr[data-setting="max520"]')
    assert page.locator('tr[data-setting="recipe"]').count() == 0  # native with no options: the presets only
    choose_recipe(page, "LLaMA-Factory 0.9.5")
    wait_for_recipe_pads(page, 576)  # 1080×2400 under image_max_pixels 589,824 and LLaMA-Factory's pre-shrink
    assert "qwen3_vl_nothink" in page.locator("#recipe-note").inner_text()
    choose_recipe(page, "ms-swift 4.6.0")
    wait_for_recipe_pads(page, 2550)  # IMAGE_MAX_TOKEN_NUM 16384: the full screenshot
    page.fill("#recipe-options textarea", "IMAGE_MAX_TOKEN_NUM=256")
    page.locator("#recipe-options textarea").blur()
    wait_for_recipe_pads(page, 230)
    page.wait_for_function("(localStorage.getItem('lora-workbench-recipe') || '').includes('256')")

    page.reload()
    page.wait_for_function("document.querySelector('#recipe-name input') && "
                           "document.querySelector('#recipe-name input').value.startsWith('ms-swift')")
    page.wait_for_function("document.querySelector('#recipe-options textarea').value.includes('256')")
    wait_for_recipe_pads(page, 230)

    choose_recipe(page, "native — our trainer, the seed's rule")
    page.get_by_role("tab", name="Mask Inspector").click()
    page.wait_for_selector("#mi-tokens .kt")
    page.click("#mi-sample input")
    page.get_by_role("option", name="sample 3: open_sales_folder-step-03").click()
    page.wait_for_function("document.querySelectorAll('#mi-token-panel .mi-chip').length == 2")
    native_trained = trained(page)
    choose_recipe(page, "ms-swift 4.6.0")
    page.wait_for_function(
        "v => document.querySelector('#mi-counts [data-count=\"trained\"]') && "
        "document.querySelector('#mi-counts [data-count=\"trained\"]').innerText.replace(/,/g, '') != String(v)",
        arg=native_trained)
    assert trained(page) > native_trained > 0  # ms-swift's default loss_scale trains every answer, history too


def trained(page) -> int:
    return int(page.locator('#mi-counts [data-count="trained"]').inner_text().replace(",", ""))
