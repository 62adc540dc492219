"""The shared recipe selector: whose trainer's rules every number follows, remembered per browser."""
from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from lora_core.qwen.recipes import RECIPES, RecipeError, make_recipe, options_from_text

RECIPE_CHOICES = [("native — our trainer, the seed's rule", "native"),
                  ("LLaMA-Factory 0.9.5", "llamafactory"), ("ms-swift 4.6.0", "ms-swift")]
OPTIONS_HELP = ("Options in the trainer's own names, KEY=VALUE per line (e.g. cutoff_len=4096), or paste a "
                "LLaMA-Factory train YAML or a `swift sft` command with its environment variables.")


STORAGE_KEY = "lora-workbench-recipe"
SAVE_JS = f"(name, options) => {{ localStorage.setItem('{STORAGE_KEY}', JSON.stringify({{name, options}})); }}"
RESTORE_JS = (f"() => {{ try {{ const saved = JSON.parse(localStorage.getItem('{STORAGE_KEY}') || '{{}}'); "
              "return [saved.name || 'native', saved.options || '']; } catch (error) { return ['native', '']; } }")


@dataclass
class RecipeBar:
    name: gr.Dropdown
    options: gr.Textbox
    choice: gr.State  # {"name", "options"}: changes once per settled choice; tabs redraw on its .change

    @property
    def inputs(self) -> list:
        return [self.name, self.options]

    def on_change(self, handler, inputs, outputs) -> None:
        self.choice.change(handler, inputs, outputs)


def recipe_encoder(ctx, name: str | None, options_text: str | None):
    """The model's encoder under the chosen recipe; raises ValueError with a sentence for a bad option."""
    name = name or "native"
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; use one of: {', '.join(RECIPES)}.")
    return ctx.encoder().with_recipe(name, options_from_text(name, options_text))


def recipe_note(ctx, name: str, options_text: str) -> str:
    try:
        checkpoint = ctx.encoder().checkpoint_settings
        recipe = make_recipe(name or "native", checkpoint, options_from_text(name or "native", options_text))
    except (RecipeError, ValueError, RuntimeError) as error:
        return f'<div class="recipe-note recipe-error" id="recipe-note">⚠️ {html.escape(str(error))}</div>'
    shown = ", ".join(f"{key}={value}" for key, value in recipe.options.items())
    warnings = "".join(f"<li>{html.escape(text)}</li>" for text in recipe.warnings())
    return (f'<div class="recipe-note" id="recipe-note" data-recipe="{html.escape(recipe.name)}"><b>{html.escape(recipe.name)}</b>: '
            f"{html.escape(shown)}" + (f"<ul>{warnings}</ul>" if warnings else "") + "</div>")


def build(ctx, blocks: gr.Blocks) -> RecipeBar:
    with gr.Accordion("Recipe: whose trainer's rules the numbers follow", open=True, elem_id="recipe-bar"):
        with gr.Row():
            name = gr.Dropdown(RECIPE_CHOICES, value="native", label="trainer", elem_id="recipe-name", scale=1)
            options = gr.Textbox(label="options", placeholder=OPTIONS_HELP, lines=1, max_lines=12,
                                 elem_id="recipe-options", scale=3)
        note = gr.HTML(elem_id="recipe-note-box")

    choice = gr.State({"name": "native", "options": ""})

    def settle(chosen, text):
        return {"name": chosen or "native", "options": text or ""}, recipe_note(ctx, chosen, text)

    def pick(chosen):  # another trainer: its options start from its defaults
        return "", {"name": chosen or "native", "options": ""}, recipe_note(ctx, chosen, "")

    name.input(pick, name, [options, choice, note]).then(None, [name, options], None, js=SAVE_JS)
    for event in (options.blur, options.submit):
        event(settle, [name, options], [choice, note]).then(None, [name, options], None, js=SAVE_JS)

    def restore(chosen, text):
        chosen = chosen if chosen in RECIPES else "native"
        text = text or ""
        return chosen, text, {"name": chosen, "options": text}, recipe_note(ctx, chosen, text)

    blocks.load(restore, [name, options], [name, options, choice, note], js=RESTORE_JS)
    return RecipeBar(name, options, choice)
