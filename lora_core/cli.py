"""Headless CLI: JSON on stdout; on bad input a one-line error on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lora_core.qwen.geometry import ImageSettings
from lora_core.qwen.recipes import RECIPES, RecipeError, make_recipe, parse_option_pairs

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


def run_geometry(args) -> dict:
    name, options = recipe_options_from_args(args)
    if args.model:
        from lora_core.qwen.checkpoint import read_model_info, resolve_model_path

        checkpoint = read_model_info(resolve_model_path(args.model, args.workspace)).settings
    else:
        checkpoint = ImageSettings()
    recipe = checked_recipe(name, checkpoint, options)
    return {"recipe": recipe.name, "options": recipe.options, **recipe.geometry(args.width, args.height).as_dict()}


def run_mask(args) -> dict:
    from lora_core.data.samples import load_sample_file

    encoder, model_name = encoder_from_args(args)
    encoded = encoder.encode(load_sample_file(args.sample))
    spans = encoded.image_spans
    return {
        "model": model_name,
        "recipe": encoder.recipe.name,
        "options": encoder.recipe.options,
        "mode": encoder.recipe.label_mode.value,
        "max_length": encoder.max_length,
        "dropped": encoded.dropped,
        "length": None if encoded.dropped else len(encoded.input_ids),
        "full_length": encoded.full_length,
        "truncated": encoded.truncated,
        "trained_tokens": encoded.trained_tokens,
        "image_tokens": encoded.image_tokens,
        "cut_inside_image": encoded.cut_inside_image(),
        "images": [{**geom.as_dict(), "span": list(span) if span else None}
                   for geom, span in zip(encoded.geometries, spans + [None] * (len(encoded.geometries) - len(spans)))],
        "input_ids": encoded.input_ids,
        "labels": encoded.labels,
        "image_pad_counts": encoded.image_pad_counts,
        "full_image_pad_counts": encoded.full_image_pad_counts,
        "full_input_ids": encoded.full_input_ids,
        "full_labels": encoded.full_labels,
        "warnings": encoder.recipe.warnings() + encoded.notes,
    }


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


class CliUsageError(Exception):
    pass


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        raise CliUsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m lora_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    geo = commands.add_parser("geometry", help="resized size, grid and visual tokens of a screenshot size")
    geo.add_argument("--width", type=positive_int, required=True)
    geo.add_argument("--height", type=positive_int, required=True)
    add_image_options(geo)
    geo.set_defaults(handler=run_geometry)

    mask = commands.add_parser("mask", help="input_ids and labels of one sample, as the trainer builds them")
    mask.add_argument("sample", type=Path, help='SAMPLE.json: {"messages": [...]}, image paths relative to it')
    mask.add_argument("--mode", choices=["last", "all"], default=None, help="native recipe: label mode (last)")
    mask.add_argument("--max-length", type=positive_int, default=None)
    add_image_options(mask)
    mask.set_defaults(handler=run_mask)

    for register in extra_commands():
        register(commands, add_image_options)
    return parser


def extra_commands():
    """Sub-commands that live beside the code they run: each module has register(commands, add_image_options)."""
    import importlib

    return [importlib.import_module(f"lora_core.{name}").register for name in EXTRA_COMMAND_MODULES]


# modules adding sub-commands (audit, coverage, ...); one line each
EXTRA_COMMAND_MODULES: list[str] = ["analysis.coverage", "analysis.audit"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        result = args.handler(args)
    except CliUsageError as error:
        print(f"error: {error} (see --help)", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0
