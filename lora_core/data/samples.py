"""Reading chat samples in the forms people have: native/seed, MAI-UI, LLaMA-Factory and ms-swift.

Everything becomes a `Sample`, the one sample type: messages whose content is a string or a list of text
and image items, the image files in order of appearance, and where the sample came from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lora_core.data.images import ImageInputError, read_image_size, safe_resolve
from lora_core.data.json_input import JsonInputError, loads, read_text

ROLES = ("system", "user", "assistant", "tool")
IMAGE_PLACEHOLDER = "<image>"
INLINE_IMAGE_MARKERS = ("[IMAGE_DATA]",)


class SampleFormatError(ValueError):
    """A sample that cannot be read; the message names the problem and the fix."""


@dataclass
class Sample:
    """The unit that is encoded, trained and exported: every reader, the store and the demo produce it."""

    messages: list[dict]
    images: list[Path | None] = field(default_factory=list)  # None: an inline image with no file (e.g. MAI-UI's [IMAGE_DATA])
    source_format: str = "native"
    id: str | None = None
    source: str | None = None  # trajectory id: train and validation are split by it
    metadata: dict = field(default_factory=dict)
    where: str = "the sample"  # names it in error messages: "data.jsonl, line 12"

    @property
    def trajectory(self) -> str:
        return self.source or self.id or self.where

    def image_sizes(self, placeholder_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        sizes = []
        for index, path in enumerate(self.images):
            if path is None:
                if placeholder_size is None:
                    raise SampleFormatError(
                        f"Image {index + 1} is inline data with no file; give its screenshot size to count its tokens."
                    )
                sizes.append(placeholder_size)
            else:
                sizes.append(read_image_size(path))
        return sizes


def image_reference(item: dict) -> str | None:
    if item.get("type") == "image_url":
        url = item.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    return item.get("image") or item.get("path") or item.get("url")


def is_inline(reference: str | None) -> bool:
    if not isinstance(reference, str):  # None is inline; other non-strings are refused by safe_resolve
        return reference is None
    return reference in INLINE_IMAGE_MARKERS or reference.startswith("data:")


def split_placeholders(text: str) -> list[dict]:
    items = []
    for index, piece in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index:
            items.append({"type": "image"})
        if piece:
            items.append({"type": "text", "text": piece})
    return items


def normalize_record(record: dict, base_dir: Path, where: str = "the sample") -> Sample:
    """Turn one record into a Sample; images resolve inside base_dir."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
        raise SampleFormatError(f"{where} has no non-empty 'messages' list.")
    listed_images = record.get("images")
    if listed_images is not None and not isinstance(listed_images, list):
        raise SampleFormatError(f"{where}: 'images' must be a list of paths.")
    uses_placeholders = listed_images is not None
    messages: list[dict] = []
    references: list[str | None] = []
    for number, message in enumerate(record["messages"], start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise SampleFormatError(f"{where}, message {number}: role must be one of {', '.join(ROLES)}.")
        content = message.get("content")
        if content is None:
            content = ""
        if isinstance(content, str):
            if uses_placeholders and IMAGE_PLACEHOLDER in content:
                content = split_placeholders(content)
                references.extend(None for item in content if item["type"] == "image")
        elif isinstance(content, list):
            items = []
            for item in content:
                if not isinstance(item, dict) or item.get("type") not in ("text", "image", "image_url"):
                    raise SampleFormatError(f"{where}, message {number}: content items must be text or image.")
                if item["type"] == "text":
                    if not isinstance(item.get("text"), str):
                        raise SampleFormatError(f"{where}, message {number}: a text item has no 'text' string.")
                    items.append({"type": "text", "text": item["text"]})
                else:
                    items.append({"type": "image"})
                    references.append(image_reference(item))
            content = items
        else:
            raise SampleFormatError(f"{where}, message {number}: content must be a string or a list of items.")
        normalized = {"role": message["role"], "content": content}
        if message.get("loss") is not None:
            if not isinstance(message["loss"], bool):
                raise SampleFormatError(
                    f"{where}, message {number}: 'loss' must be true, false or null, got {message['loss']!r}."
                )
            normalized["loss"] = message["loss"]
        messages.append(normalized)
    if uses_placeholders:
        if len(references) != len(listed_images):
            raise SampleFormatError(
                f"{where} has {len(references)} <image> placeholder(s) but {len(listed_images)} image(s) listed; "
                "they must match one to one, in order."
            )
        references = list(listed_images)
        source_format = "llamafactory"
    else:
        source_format = "native"
    images: list[Path | None] = []
    for reference in references:
        if is_inline(reference):
            images.append(None)
            source_format = "mai-ui" if reference in INLINE_IMAGE_MARKERS else source_format
            continue
        try:
            images.append(safe_resolve(base_dir, reference))
        except ImageInputError as error:
            raise SampleFormatError(f"{where}: {error}") from None
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    sample_id = record.get("id") if isinstance(record.get("id"), (str, int)) else None
    sample_id = str(sample_id) if sample_id is not None else None
    source = metadata.get("source")
    return Sample(messages, images, source_format, sample_id, str(source) if source else sample_id, metadata, where)


def load_sample_file(path: Path) -> Sample:
    """A single sample file: `{"messages": [...]}` (optionally with `images`) or a bare message list."""
    path = Path(path)
    try:
        data = loads(read_text(path, "a .json sample file", inside=path.parent), path.name)
    except JsonInputError as error:
        raise SampleFormatError(str(error)) from None
    if isinstance(data, list):
        data = {"messages": data}
    return normalize_record(data, path.parent, where=path.name)
