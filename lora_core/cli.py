"""Headless CLI: JSON on stdout; on bad input a one-line error on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .geometry import ImageSettings, geometry

DEFAULT_WORKSPACE = Path("workspace")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def settings_from_args(args) -> ImageSettings:
    """The model's own image settings (or Qwen3-VL's), overridden by the command line."""
    if args.model:
        from .model import read_model_info, resolve_model_path

        settings = read_model_info(resolve_model_path(args.model, args.workspace)).settings
    else:
        settings = ImageSettings()
    overrides = {
        key: value
        for key, value in (("max_dim", args.max_dim), ("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels))
        if value is not None
    }
    return settings.with_(**overrides)


def run_geometry(args) -> dict:
    return geometry(args.width, args.height, settings_from_args(args)).as_dict()


def run_mask(args) -> dict:
    from .chat import encode_sample
    from .model import load_tokenizer, read_model_info, resolve_model_path
    from .samples import load_sample_file

    sample = load_sample_file(args.sample)
    info = read_model_info(resolve_model_path(args.model, args.workspace))
    settings = info.settings.with_(
        **{k: v for k, v in (("max_dim", args.max_dim), ("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v is not None}
    )
    encoded = encode_sample(
        sample.messages,
        load_tokenizer(str(info.path)),
        sample.image_sizes(),
        settings,
        info.chat_template,
        args.mode,
        args.max_length,
    )
    return {
        "model": info.name,
        "mode": args.mode,
        "max_length": args.max_length,
        "length": len(encoded.input_ids),
        "full_length": encoded.full_length,
        "truncated": encoded.truncated,
        "trained_tokens": encoded.trained_tokens,
        "image_tokens": encoded.image_tokens,
        "cut_inside_image": encoded.cut_inside_image(),
        "images": [
            {**geom.as_dict(), "span": list(span)}
            for geom, span in zip(encoded.rendered.geometries, encoded.rendered.image_spans)
        ],
        "input_ids": encoded.input_ids,
        "labels": encoded.labels,
    }


def add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-dim", type=positive_int, help="pre-resize the longest side to this many pixels")
    parser.add_argument("--min-pixels", type=positive_int, help="processor pixel budget, lower bound")
    parser.add_argument("--max-pixels", type=positive_int, help="processor pixel budget, upper bound")
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
    mask.add_argument("--mode", choices=["last", "all"], default="last")
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
EXTRA_COMMAND_MODULES: list[str] = ["coverage", "audit"]


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
