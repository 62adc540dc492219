"""The one reader of user JSON: dataset files, sample files, import sources and pasted text all come through here.

- size: a file or text over the limit is refused before it is parsed (`MAX_JSON_BYTES`, 512 MiB, for files;
  `MAX_PASTE_BYTES`, 2 MiB, for the Inspector's paste box);
- text: not UTF-8 → a sentence naming the file and the line of the first bad byte; a leading BOM is dropped;
- links: a file that is a link out of the folder it is read from is refused (`inside=`);
- nesting: a value nested deeper than `MAX_JSON_DEPTH` (100) levels is refused, and so is one deep enough to
  exhaust Python's recursion (RecursionError never escapes); no chat sample nests more than a few levels;
- long text: one string of more than `MAX_STRING_CHARS` (1,000,000) characters is refused, an inline
  `data:` image excepted;
- syntax: `InvalidJson` names the file, the line and the column.
Every refusal is a `JsonInputError` (a ValueError) whose one sentence names the file and says what to do.
Limits: module constants, function arguments, or LORA_MAX_JSON_BYTES, LORA_MAX_PASTE_BYTES, LORA_MAX_JSON_DEPTH,
LORA_MAX_JSON_STRING.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

MAX_JSON_BYTES = 512 * 1024**2
MAX_PASTE_BYTES = 2 * 1024**2
MAX_JSON_DEPTH = 100
MAX_STRING_CHARS = 1_000_000
DEPTH_SCAN_LIMIT = 5_000_000  # brackets counted to say how deep a too-deep text goes
ENV = {"bytes": "LORA_MAX_JSON_BYTES", "paste": "LORA_MAX_PASTE_BYTES", "depth": "LORA_MAX_JSON_DEPTH",
       "string": "LORA_MAX_JSON_STRING"}
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonInputError(ValueError):
    """User JSON that is not read; the message names the file and the fix."""


class InvalidJson(JsonInputError):
    """Not JSON at all; `msg`, `lineno` and `colno` are json's, for callers that word it per line."""

    def __init__(self, sentence: str, error: json.JSONDecodeError):
        super().__init__(sentence)
        self.msg, self.lineno, self.colno, self.pos = error.msg, error.lineno, error.colno, error.pos


def limit(key: str, default: int, given: int | None = None) -> int:
    """`given`, else the environment variable, else the module default."""
    if given is not None:
        return int(given)
    text = os.environ.get(ENV[key], "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise JsonInputError(f"${ENV[key]} is {text!r}, not a number; unset it or give a positive number.") from None
    if value <= 0:
        raise JsonInputError(f"${ENV[key]} is {text!r}; it must be a positive number.")
    return value


def megabytes(count: int) -> str:
    return f"{count / 1024**2:,.1f} MB" if count >= 1024**2 else f"{count:,} bytes"


def too_large(name: str, size: int, cap: int, env: str, fix: str) -> JsonInputError:
    return JsonInputError(f"{name} is {megabytes(size)}, more than the limit of {megabytes(cap)} (${env}); {fix}")


def check_link(path: Path, inside: Path) -> None:
    """Refuse a file that resolves outside `inside` (a link out of its folder)."""
    folder = Path(inside).resolve()
    real = path.resolve()
    if folder not in real.parents:
        raise JsonInputError(
            f"{path.name} is a link to {real.name}, outside its folder; links out of a dataset's folder are not "
            "followed. Give the real file's path, or copy the file into the folder.")  # no server path is named


def read_text(path: Path, what: str = "a JSON or JSONL file", *, max_bytes: int | None = None,
              inside: Path | None = None) -> str:
    """The UTF-8 text of a user JSON/JSONL file, BOM dropped; `inside`: the folder it must really be in."""
    path = Path(path)
    if not path.exists():
        raise JsonInputError(f"{path} does not exist.")
    if not path.is_file():
        raise JsonInputError(f"{path} is not a file; give {what}.")
    if inside is not None:
        check_link(path, inside)
    cap = limit("bytes", MAX_JSON_BYTES, max_bytes)
    size = path.stat().st_size
    if size > cap:
        raise too_large(path.name, size, cap, ENV["bytes"], "split it into smaller files.")
    data = path.read_bytes()
    if len(data) > cap:  # grew while being read
        raise too_large(path.name, len(data), cap, ENV["bytes"], "split it into smaller files.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise JsonInputError(f"{path.name} is not UTF-8 text (line {line} has the byte 0x{data[error.start]:02x}); "
                             f"{what} is UTF-8 JSON: save it as UTF-8.") from None
    return text.lstrip("\ufeff")


def check_text(text: str, name: str, *, max_bytes: int | None = None, env: str = "paste") -> str:
    """Refuse text (the paste box) over its limit; returns the text."""
    cap = limit(env, MAX_PASTE_BYTES if env == "paste" else MAX_JSON_BYTES, max_bytes)
    if len(text) > cap or len(text.encode("utf-8", "surrogatepass")) > cap:
        raise too_large(name, len(text.encode("utf-8", "surrogatepass")), cap, ENV[env],
                        "upload it as a file instead." if env == "paste" else "split it into smaller files.")
    return text


def loads(text: str, name: str, *, max_depth: int | None = None, max_string: int | None = None):
    """json.loads with the nesting and string limits; refusals are sentences about `name`."""
    depth_cap = limit("depth", MAX_JSON_DEPTH, max_depth)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidJson(f"{name} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}.",
                          error) from None
    except RecursionError:
        depth, exact = text_depth(text)
        raise too_deep(name, depth, depth_cap, exact) from None
    check_value(value, name, depth_cap, limit("string", MAX_STRING_CHARS, max_string))
    return value


def too_deep(name: str, depth: int, cap: int, exact: bool = True) -> JsonInputError:
    levels = f"{depth:,}" if exact else f"at least {depth:,}"
    return JsonInputError(f"{name} is nested {levels} levels deep; at most {cap:,} levels are read "
                          f"(${ENV['depth']}). No chat sample nests that deep: check what wrote the file.")


def text_depth(text: str) -> tuple[int, bool]:
    """How deep the brackets of `text` go (strings skipped); (depth, exact)."""
    brackets = NOT_BRACKET.sub("", STRING.sub("", text))
    exact = len(brackets) <= DEPTH_SCAN_LIMIT
    depth = deepest = 0
    for char in brackets[:DEPTH_SCAN_LIMIT]:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif depth:
            depth -= 1
    return deepest, exact


def check_value(value, name: str, depth_cap: int, string_cap: int) -> None:
    """Walk a parsed value without recursion: refuse nesting over depth_cap and strings over string_cap."""
    check_string(value, None, name, string_cap)
    stack = [(value, 1, None)]  # (container, its depth, its path as (key, parent path))
    while stack:
        item, depth, path = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > depth_cap:
            raise too_deep(name, depth - 1 + depth_of(item), depth_cap)
        for key, child in (item.items() if isinstance(item, dict) else enumerate(item)):
            if isinstance(child, str):
                check_string(child, (key, path), name, string_cap)
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1, (key, path)))


def check_string(value, path, name: str, string_cap: int) -> None:
    if isinstance(value, str) and len(value) > string_cap and not value.startswith("data:"):
        raise JsonInputError(
            f"{name} holds a text of {len(value):,} characters at {path_text(path)}; at most {string_cap:,} "
            f"characters are read per text (${ENV['string']}). Shorten it.")


def depth_of(value) -> int:
    """The depth of a container (1 for an empty or flat one), walked without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def path_text(path) -> str:
    keys = []
    while path is not None:
        key, path = path
        keys.append(key)
    if not keys:
        return "the top level"
    text = ""
    for key in reversed(keys):
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text
