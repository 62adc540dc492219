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
