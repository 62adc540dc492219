"""Headless CLI: JSON on stdout; on bad input a one-line error on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lora_core.cli_args import (  # noqa: F401  (positive_int and CliUsageError: the CLI's public helpers)
    CliUsageError,
    add_image_options,
    checked_recipe,
    encoder_from_args,
    positive_int,
    recipe_options_from_args,
)
from lora_core.qwen.geometry import ImageSettings

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
    from lora_core.data.images import check_images
    from lora_core.data.samples import load_sample_file

    sample = load_sample_file(args.sample)  # a bad file is refused before the model loads
    check_images(sample.images, sample.where)  # and so is a bad image (headers only)
    encoder, model_name = encoder_from_args(args)
    encoded = encoder.encode(sample)
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
EXTRA_COMMAND_MODULES: list[str] = ["training.coverage_command", "analysis.audit", "training.predict",
                                     "training.merge"]


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
