"""The CLI's shared argument helpers: positive numbers, the recipe and image options, and the encoder they pick.

Sub-command modules (`lora_core.analysis.audit`, `lora_core.training.coverage_command`) and `authoring.cli`
import these; `lora_core.cli` assembles the commands.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes import RECIPES, RecipeError, make_recipe, parse_option_pairs

class CliUsageError(Exception):
    pass


DEFAULT_WORKSPACE = Path("workspace")
# the native recipe's command-line flags, and the option each stands for
NATIVE_FLAGS = {"mode": "--mode", "max_length": "--max-length", "max_dim": "--max-dim", "min_pixels": "--min-pixels",
                "max_pixels": "--max-pixels"}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def recipe_options_from_args(args, native_defaults: dict | None = None) -> tuple[str, dict]:
    """(recipe name, options) from --recipe/--option and, under native, today's flags."""
    name = getattr(args, "recipe", "native") or "native"
    if name not in RECIPES:
        raise CliUsageError(f"unknown recipe {name!r}; use one of: {', '.join(RECIPES)}")
    try:
        options = parse_option_pairs(getattr(args, "option", None))
    except RecipeError as error:
        raise CliUsageError(str(error)) from None
    given = {key: getattr(args, key) for key in NATIVE_FLAGS if getattr(args, key, None) is not None}
    if name != "native":
        if given:
            key = next(iter(given))
            own = RECIPES[name].native_equivalent(key)
            raise CliUsageError(f"{NATIVE_FLAGS[key]} belongs to the native recipe; under {name} use "
                                f"--option {own}=VALUE" if own else
                                f"{NATIVE_FLAGS[key]} belongs to the native recipe; {name} has no such option")
        return name, options
    merged = {**(native_defaults or {}), **given, **options}
    return name, merged


def checked_recipe(name: str, checkpoint: ImageSettings, options: dict):
    try:
        return make_recipe(name, checkpoint, options)
    except RecipeError as error:
        raise CliUsageError(str(error)) from None


def encoder_from_args(args, native_defaults: dict | None = None):
    """(encoder, model name): the chosen checkpoint under the chosen recipe."""
    from lora_core.qwen.checkpoint import read_model_info, resolve_model_path
    from lora_core.qwen.encoder import Encoder

    name, options = recipe_options_from_args(args, native_defaults)
    folder = resolve_model_path(args.model, args.workspace)
    info = read_model_info(folder)  # JSON only: a bad option is refused before the tokenizer loads
    checked_recipe(name, info.settings, options)
    return Encoder.from_checkpoint(folder).with_recipe(name, options), info.name


def add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="native",
                        help=f"whose rules to apply: {', '.join(RECIPES)} (default native)")
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="a recipe option in the recipe's own name, e.g. cutoff_len=2048; repeatable")
    parser.add_argument("--max-dim", type=positive_int, help="native: pre-resize the longest side to this many pixels")
    parser.add_argument("--min-pixels", type=positive_int, help="native: processor pixel budget, lower bound")
    parser.add_argument("--max-pixels", type=positive_int, help="native: processor pixel budget, upper bound")
    parser.add_argument("--model", help="checkpoint folder or hub id whose processor config to use (default: embedded tiny Qwen3-VL)")
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="where the embedded model lives (default ./workspace)")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
