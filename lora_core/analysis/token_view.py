"""The Inspector's token view: each token's display text (bytes split over tokens shown as hex) and its class."""
from __future__ import annotations

import codecs
from typing import Sequence

from lora_core.analysis.masking import (
    HISTORY,
    IMAGE,
    SPECIAL,
    SYSTEM,
    TARGET,
    USER,
    MaskAnalysis,
    block_role,
)
from lora_core.qwen.chat import IGNORE_INDEX
from lora_core.qwen.special_tokens import SpecialTokens


def _byte_level_decoder() -> dict[str, int]:
    """Byte-level BPE writes each byte as a printable character; this maps those characters back to bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in stand_in:
            stand_in[byte] = chr(256 + shifted)
            shifted += 1
    return {char: byte for byte, char in stand_in.items()}


BYTE_DECODER = _byte_level_decoder()
_PIECES: dict[int, dict[int, bytes | str]] = {}  # per tokenizer: id -> bytes (text token) or str (added token)


def token_pieces(tokenizer, ids: Sequence[int]) -> dict[int, bytes | str]:
    pieces = _PIECES.setdefault(id(tokenizer), {})
    missing = sorted({i for i in ids if i not in pieces})
    if missing:
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        for token_id, token in zip(missing, tokenizer.convert_ids_to_tokens(missing)):
            if token_id in added or token is None:
                pieces[token_id] = str(token if token is not None else f"<id {token_id}>")
            elif all(char in BYTE_DECODER for char in token):
                pieces[token_id] = bytes(BYTE_DECODER[char] for char in token)
            else:  # not a byte-level vocabulary: let the tokenizer decode it
                pieces[token_id] = tokenizer.decode([token_id]).encode("utf-8")
    return pieces


def token_texts(tokenizer, ids: Sequence[int], image_pad: int) -> tuple[list[str], set[int]]:
    """Display text of each token. A character split over several tokens shows on the token that completes it;
    the tokens holding only part of it show their bytes as hex and are returned in the second set."""
    pieces = token_pieces(tokenizer, ids)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    texts: list[str] = []
    partial: set[int] = set()
    for index, token_id in enumerate(ids):
        if token_id == image_pad:
            texts.append("")
            continue
        piece = pieces[token_id]
        if isinstance(piece, str):
            decoder.reset()
            texts.append(piece)
            continue
        text = decoder.decode(piece)
        if not text and piece:
            partial.add(index)
            text = " ".join(f"{byte:02x}" for byte in piece)
        texts.append(text)
    return texts, partial


def token_roles(ids: Sequence[int], special: SpecialTokens) -> list[str]:
    """The role of the block each token belongs to (system / user / assistant / other)."""
    roles = []
    role = "other"
    for index, token in enumerate(ids):
        if token == special.im_start:
            role = block_role(ids, index, special)
        roles.append(role)
    return roles


def token_classes(a: MaskAnalysis) -> list[str]:
    """One class per token of the uncut sequence; a dropped token gets the class it would have had."""
    ids, kept = a.ids, a.kept
    labels, full_labels = a.kept_labels, a.full_labels
    roles = token_roles(ids, a.special)
    structure = a.special.structure
    classes = []
    for index, token in enumerate(ids):
        label = labels[index] if index in kept else full_labels[index]
        if token == a.special.image_pad:
            classes.append(IMAGE)
        elif label != IGNORE_INDEX:
            classes.append(TARGET)
        elif token in structure:
            classes.append(SPECIAL)
        elif roles[index] == "system":
            classes.append(SYSTEM)
        elif roles[index] == "assistant":
            classes.append(HISTORY)
        else:
            classes.append(USER)
    return classes
