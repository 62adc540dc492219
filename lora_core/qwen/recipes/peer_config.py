"""Recipe options read from a peer's own configuration: a LLaMA-Factory train YAML or a `swift sft` command line.

Both readers return a `PeerOptions` (a dict of recipe options) that also lists what it read and what it ignored.
"""
from __future__ import annotations

import re
import shlex

from lora_core.qwen.geometry import QWEN3VL_MERGE_SIZE, QWEN3VL_PATCH_SIZE, ImageSettings
from lora_core.qwen.recipes.base import RecipeError
from lora_core.qwen.recipes.llamafactory import LlamaFactoryRecipe
from lora_core.qwen.recipes.swift import SwiftRecipe

LLAMAFACTORY_KEYS = tuple(spec.name for spec in LlamaFactoryRecipe.option_specs)
SWIFT_FLAGS = ("template", "loss_scale", "max_length", "truncation_strategy")
SWIFT_TOKEN_VARIABLES = ("IMAGE_MIN_TOKEN_NUM", "IMAGE_MAX_TOKEN_NUM")
LEGACY_PIXEL_VARIABLES = {"MIN_PIXELS": "IMAGE_MIN_TOKEN_NUM", "MAX_PIXELS": "IMAGE_MAX_TOKEN_NUM"}
SHELL_STOPS = ("|", "||", "&&", ";", "&")
PIXELS_PER_TOKEN = (QWEN3VL_PATCH_SIZE * QWEN3VL_MERGE_SIZE) ** 2  # what ms-swift divides MAX/MIN_PIXELS by
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


class PeerOptions(dict):
    """Recipe options, with `read` (what was taken, as `key: value`) and `ignored` (the other keys or flags)."""

    def __init__(self, options: dict, read: list[str], ignored: list[str]):
        super().__init__(options)
        self.read = read
        self.ignored = ignored


def _checked(recipe: type, options: dict) -> dict:
    """The values parsed as the recipe parses them; a bad value or combination is refused with its sentence."""
    specs = {spec.name: spec for spec in recipe.option_specs}
    parsed = {key: specs[key].parse(value, recipe.name) for key, value in options.items()}
    recipe(ImageSettings(), **parsed)
    return parsed


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


def options_from_llamafactory_yaml(text: str) -> PeerOptions:
    """The llamafactory recipe's options from a LLaMA-Factory train YAML (other keys are listed in `ignored`)."""
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise RecipeError(f"The LLaMA-Factory config is not valid YAML{line}.") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise RecipeError("A LLaMA-Factory config must be a YAML mapping of key: value lines.")
    options = _checked(LlamaFactoryRecipe, {key: config[key] for key in LLAMAFACTORY_KEYS if key in config})
    read = [f"{key}: {_shown(value)}" for key, value in options.items()]
    ignored = [str(key) for key in config if key not in LLAMAFACTORY_KEYS]
    return PeerOptions(options, read, ignored)


def _swift_words(text: str) -> list[str]:
    joined = re.sub(r"\\\r?\n", " ", text)
    lexer = shlex.shlex(joined, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError as error:
        raise RecipeError(f"The swift command line cannot be read: {error}.") from None


def _swift_flags(words: list[str]) -> list[tuple[str, list[str]]]:
    """(name, values) of each --flag, up to the end of the command (a pipe, `;`, `&&` or a redirection)."""
    flags: list[tuple[str, list[str]]] = []
    for word in words:
        if word in SHELL_STOPS or word.startswith((">", "2>", "1>")):
            break
        if word.startswith("--"):
            name, sep, value = word[2:].partition("=")
            flags.append((name, [value] if sep else []))
        elif flags:
            flags[-1][1].append(word)
        else:
            raise RecipeError(f"The swift command has {word!r} where a --flag was expected.")
    return flags


def options_from_swift_command(text: str) -> PeerOptions:
    """The ms-swift recipe's options from a `swift sft ...` command line with its leading VAR=value assignments."""
    words = _swift_words(text)
    environment: dict[str, str] = {}
    index = 0
    while index < len(words) and (words[index] in ("export", *SHELL_STOPS) or ASSIGNMENT.match(words[index])):
        if ASSIGNMENT.match(words[index]):
            name, value = ASSIGNMENT.match(words[index]).groups()
            environment[name] = value
        index += 1
    if index + 1 >= len(words) or words[index] != "swift" or words[index + 1] != "sft":
        raise RecipeError("Paste a `swift sft ...` command line (environment assignments such as "
                          "IMAGE_MAX_TOKEN_NUM=1280 may come first).")
    flags: dict[str, str] = {}
    ignored: list[str] = []
    for name, values in _swift_flags(words[index + 2:]):
        if name not in SWIFT_FLAGS:
            ignored.append(f"--{name}")
        elif len(values) != 1:
            raise RecipeError(f"The swift flag --{name} needs one value, got {len(values)}.")
        else:
            flags[name] = values[0]
    options: dict = dict(flags)
    read = [f"--{key} {value}" for key, value in flags.items()]
    for name in SWIFT_TOKEN_VARIABLES:
        if name in environment:
            options[name] = environment[name]
            read.append(f"{name}={environment[name]}")
    for legacy, token_name in LEGACY_PIXEL_VARIABLES.items():
        if legacy in environment and token_name in environment:
            ignored.append(f"{legacy} (ms-swift uses {token_name} when both are set)")
        elif legacy in environment:
            pixels = environment[legacy]
            if not re.fullmatch(r"\d+", pixels.strip()):
                raise RecipeError(f"{legacy} must be a whole number of pixels, got {pixels!r}.")
            tokens = max(1, int(pixels) // PIXELS_PER_TOKEN)
            options[token_name] = tokens
            read.append(f"{legacy}={pixels} (as {token_name}={tokens}, ÷{PIXELS_PER_TOKEN})")
    ignored += [name for name in environment
                if name not in SWIFT_TOKEN_VARIABLES and name not in LEGACY_PIXEL_VARIABLES]
    return PeerOptions(_checked(SwiftRecipe, options), read, ignored)


__all__ = ["PeerOptions", "options_from_llamafactory_yaml", "options_from_swift_command"]
