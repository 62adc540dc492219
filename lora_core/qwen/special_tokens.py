"""The template's special token ids, read from the tokenizer (and the model config where it names them).

No id is written by hand anywhere in the project: a checkpoint with another vocabulary gets its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class SpecialTokens:
    pad: int
    endoftext: int
    im_start: int
    im_end: int
    vision_start: int
    vision_end: int
    image_pad: int
    video_pad: int
    newline: tuple[int, ...]  # the ids of "\n" after <|im_end|> and after a role name
    role_headers: dict  # role -> ids of "<|im_start|>{role}\n"
    think_start: int | None = None
    think_end: int | None = None
    double_newline: tuple[int, ...] = ()  # the ids of "\n\n" (one token in Qwen's vocabulary)

    @property
    def assistant_header(self) -> tuple[int, ...]:
        return self.role_headers["assistant"]

    @property
    def empty_think_block(self) -> tuple[int, ...] | None:
        """Ids of "<think>\n\n</think>\n\n", None when the tokenizer has no think tokens."""
        if self.think_start is None or self.think_end is None or not self.double_newline:
            return None
        return (self.think_start, *self.double_newline, self.think_end, *self.double_newline)

    @property
    def structure(self) -> frozenset[int]:
        """Template tokens that are not text: shown as chips, never decoded as words."""
        return frozenset({self.endoftext, self.im_start, self.im_end, self.vision_start, self.vision_end})

    @property
    def image_tokens(self) -> frozenset[int]:
        return frozenset({self.image_pad, self.video_pad})

    def role_at(self, ids, start: int) -> str:
        """The role of the block whose <|im_start|> is at `start`."""
        for role, header in self.role_headers.items():
            prefix = header[: len(header) - len(self.newline)]  # the newline may merge with the text after it
            if tuple(ids[start : start + len(prefix)]) == prefix:
                return role
        return "other"


class TokenizerMismatch(ValueError):
    """The tokenizer lacks a token the Qwen-VL chat template needs."""


def _token_id(tokenizer, text: str) -> int:
    value = tokenizer.convert_tokens_to_ids(text)
    if value is None or (tokenizer.unk_token_id is not None and value == tokenizer.unk_token_id):
        raise TokenizerMismatch(f"The tokenizer has no {text} token; is this a Qwen-VL checkpoint?")
    return int(value)


def _optional_id(tokenizer, text: str) -> int | None:
    try:
        return _token_id(tokenizer, text)
    except TokenizerMismatch:
        return None


def _ids(tokenizer, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def read_special_tokens(tokenizer, model_config: dict | None = None) -> SpecialTokens:
    """Special ids from `tokenizer`; the model config's image/vision ids win, since the model looks for those."""
    config = model_config or {}
    im_start = _token_id(tokenizer, "<|im_start|>")
    endoftext = _token_id(tokenizer, "<|endoftext|>")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else endoftext
    headers = {role: (im_start, *_ids(tokenizer, f"{role}\n")) for role in ROLES}
    return SpecialTokens(
        pad=int(pad),
        endoftext=endoftext,
        im_start=im_start,
        im_end=_token_id(tokenizer, "<|im_end|>"),
        vision_start=int(config.get("vision_start_token_id") or _token_id(tokenizer, "<|vision_start|>")),
        vision_end=int(config.get("vision_end_token_id") or _token_id(tokenizer, "<|vision_end|>")),
        image_pad=int(config.get("image_token_id") or _token_id(tokenizer, "<|image_pad|>")),
        video_pad=int(config.get("video_token_id") or _token_id(tokenizer, "<|video_pad|>")),
        newline=_ids(tokenizer, "\n"),
        role_headers=headers,
        think_start=_optional_id(tokenizer, "<think>"),
        think_end=_optional_id(tokenizer, "</think>"),
        double_newline=_ids(tokenizer, "\n\n"),
    )


@lru_cache(maxsize=8)
def special_tokens_of(tokenizer) -> SpecialTokens:
    """read_special_tokens, once per tokenizer object (tokenizers are cached per checkpoint)."""
    return read_special_tokens(tokenizer)
