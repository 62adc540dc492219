"""The built-in recipes, by name: `native`, `llamafactory`, `ms-swift`."""
from __future__ import annotations

from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes.base import OptionSpec, Recipe, RecipeEncoding, RecipeError
from lora_core.qwen.recipes.llamafactory import LlamaFactoryRecipe
from lora_core.qwen.recipes.native import NativeRecipe
from lora_core.qwen.recipes.swift import SwiftRecipe

RECIPES: dict[str, type[Recipe]] = {NativeRecipe.name: NativeRecipe, LlamaFactoryRecipe.name: LlamaFactoryRecipe,
                                    SwiftRecipe.name: SwiftRecipe}


def make_recipe(name: str, checkpoint: ImageSettings, options: dict | None = None) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"Unknown recipe {name!r}; use one of: {', '.join(RECIPES)}.")
    return RECIPES[name](checkpoint, **(options or {}))


def parse_option_pairs(pairs) -> dict:
    """`KEY=VALUE` strings (the CLI's --option) as a dict; values stay text for the recipe to parse."""
    options = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"An option must be written KEY=VALUE, got {pair!r}.")
        options[key.strip()] = value.strip()
    return options


__all__ = ["OptionSpec", "Recipe", "RecipeEncoding", "RecipeError", "RECIPES", "make_recipe", "parse_option_pairs",
           "NativeRecipe", "LlamaFactoryRecipe", "SwiftRecipe"]


def options_from_text(name: str, text: str | None) -> dict:
    """Options as a user types or pastes them: `KEY=VALUE` lines (or `;`-separated), a LLaMA-Factory YAML
    (under llamafactory) or a `swift sft` command line with its environment variables (under ms-swift)."""
    from lora_core.qwen.recipes.peer_config import options_from_llamafactory_yaml, options_from_swift_command

    text = (text or "").strip()
    if not text:
        return {}
    if name == "ms-swift" and "swift" in text.split():
        return dict(options_from_swift_command(text))
    if name == "llamafactory" and any(":" in line and "=" not in line for line in text.splitlines()):
        return dict(options_from_llamafactory_yaml(text))
    pairs = [piece for line in text.splitlines() for piece in line.split(";") if piece.strip()]
    return parse_option_pairs(pairs)
