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


@dataclass
class RecipeBar:
    name: gr.Dropdown
    options: gr.Textbox

    @property
    def inputs(self) -> list:
        return [self.name, self.options]


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
    stored = gr.BrowserState({"name": "native", "options": ""}, storage_key="lora-workbench-recipe")
    with gr.Accordion("Recipe: whose trainer's rules the numbers follow", open=True, elem_id="recipe-bar"):
        with gr.Row():
            name = gr.Dropdown(RECIPE_CHOICES, value="native", label="trainer", elem_id="recipe-name", scale=1)
            options = gr.Textbox(label="options", placeholder=OPTIONS_HELP, lines=1, max_lines=12,
                                 elem_id="recipe-options", scale=3)
        note = gr.HTML(elem_id="recipe-note-box")

    def remember(chosen, text):
        return {"name": chosen or "native", "options": text or ""}, recipe_note(ctx, chosen, text)

    for component in (name, options):
        getattr(component, "input" if component is name else "blur")(remember, [name, options], [stored, note])
    name.change(lambda chosen, text: recipe_note(ctx, chosen, text), [name, options], note)

    def restore(saved):
        saved = saved if isinstance(saved, dict) else {}
        chosen = saved.get("name") if saved.get("name") in RECIPES else "native"
        return chosen, saved.get("options", ""), recipe_note(ctx, chosen, saved.get("options", ""))

    blocks.load(restore, stored, [name, options, note])
    return RecipeBar(name, options)
