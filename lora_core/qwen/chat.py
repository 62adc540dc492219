"""Chat rendering and the seed's label rule: messages → (input_ids, labels), with the model's own template.

`render_chat` applies the checkpoint's chat template (transformers' `apply_chat_template`) and expands each
image placeholder to its visual-token count; `build_labels` is the seed's `_create_labels`. Special ids come
from `SpecialTokens`, read from the tokenizer. The encoder (`lora_core.qwen.encoder`) is the only caller
outside this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Sequence

from lora_core.qwen.geometry import Geometry
from lora_core.qwen.special_tokens import SpecialTokens

IGNORE_INDEX = -100

QWEN3VL_CHAT_TEMPLATE = (Path(__file__).parent / "templates" / "qwen3_vl_instruct.jinja").read_text()


class LabelMode(str, Enum):
    LAST = "last"  # the seed's _create_labels: only the final assistant answer
    ALL = "all"  # every assistant answer (official Qwen3-VL code, LLaMA-Factory)


def parse_label_mode(mode: str | LabelMode) -> LabelMode:
    try:
        return LabelMode(mode)
    except ValueError:
        raise ValueError(f"Unknown label mode {mode!r}; use 'last' or 'all'.") from None


@dataclass
class RenderedChat:
    text: str  # the template's output, one image pad per image
    input_ids: list[int]  # image pads expanded to each image's visual-token count
    image_spans: list[tuple[int, int]]  # [start, end) of each image's pads in input_ids
    geometries: list[Geometry]
    assistant_message_indices: list[int] = field(default_factory=list)
    loss_overrides: list[bool | None] = field(default_factory=list)  # per assistant turn, in order


def count_images(messages: Sequence[dict]) -> int:
    return sum(
        1
        for message in messages
        if not isinstance(message.get("content"), str)
        for item in message.get("content") or []
        if item.get("type") in ("image", "image_url")
    )


def render_chat(
    messages: Sequence[dict],
    tokenizer,
    geometries: Sequence[Geometry],
    special: SpecialTokens,
    chat_template: str | None = None,
    add_generation_prompt: bool = False,
) -> RenderedChat:
    """Render messages with the chat template and expand image i's pad to `geometries[i].visual_tokens` pads."""
    expected = count_images(messages)
    if expected != len(geometries):
        raise ValueError(f"The messages hold {expected} image(s) but {len(geometries)} image size(s) were given.")
    text = tokenizer.apply_chat_template(
        list(messages), chat_template=chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    placeholders = [i for i, token in enumerate(ids) if token == special.image_pad]
    if len(placeholders) != len(geometries):
        raise ValueError(
            f"The chat template wrote {len(placeholders)} image placeholder(s) for {len(geometries)} image(s); "
            "the template and the messages disagree."
        )
    expanded: list[int] = []
    spans: list[tuple[int, int]] = []
    previous = 0
    for position, geom in zip(placeholders, geometries):
        expanded.extend(ids[previous:position])
        spans.append((len(expanded), len(expanded) + geom.visual_tokens))
        expanded.extend([special.image_pad] * geom.visual_tokens)
        previous = position + 1
    expanded.extend(ids[previous:])
    assistant_indices = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    overrides = [messages[i].get("loss") for i in assistant_indices]
    return RenderedChat(text, expanded, spans, list(geometries), assistant_indices, overrides)


@dataclass(frozen=True)
class AssistantTurn:
    """Positions of one assistant turn in input_ids, named as in the seed's _create_labels."""

    im_start: int  # <|im_start|>
    role: int  # the first token of the role name
    ans_start: int  # first answer token, after "<|im_start|>assistant\n"
    ans_end: int | None  # the closing <|im_end|>, None when the sequence ends first
    end_length: int = 2  # <|im_end|> and the newline after it

    @property
    def label_end(self) -> int:
        """Exclusive end of the trained span: through <|im_end|> and the newline after it."""
        return self.ans_end + self.end_length if self.ans_end is not None else self.ans_start


def find_assistant_turns(input_ids: Sequence[int], special: SpecialTokens) -> list[AssistantTurn]:
    header = special.assistant_header
    # the role without its newline: an answer starting with "\n" merges with it into one token, which
    # ans_start skips, as the seed's position + 2 does
    prefix = header[: len(header) - len(special.newline)]
    size, length = len(header), len(input_ids)
    end_length = 1 + len(special.newline)
    turns = []
    for pos in range(length - len(prefix) + 1):
        if input_ids[pos] == special.im_start and tuple(input_ids[pos : pos + len(prefix)]) == prefix:
            ans_start = pos + size
            ans_end = ans_start
            while ans_end < length and input_ids[ans_end] != special.im_end:
                ans_end += 1
            turns.append(AssistantTurn(pos, pos + 1, ans_start, ans_end if ans_end < length else None, end_length))
    return turns


def trained_turns(
    turns: Sequence[AssistantTurn], mode: LabelMode | str, overrides: Sequence[bool | None] = ()
) -> list[bool]:
    """Which assistant turns the loss is computed on; a per-message `loss` flag wins over the mode."""
    mode = parse_label_mode(mode)
    chosen = []
    for index in range(len(turns)):
        default = mode is LabelMode.ALL or index == len(turns) - 1
        override = overrides[index] if index < len(overrides) else None
        chosen.append(default if override is None else bool(override))
    return chosen


def build_labels(
    input_ids: Sequence[int],
    special: SpecialTokens,
    mode: LabelMode | str = LabelMode.LAST,
    overrides: Sequence[bool | None] = (),
) -> list[int]:
    """Labels for input_ids: answer tokens of the chosen assistant turns, IGNORE_INDEX elsewhere.

    A turn is trained from ans_start through its <|im_end|> and the newline after it; a turn whose
    <|im_end|> is missing (cut by truncation) is not trained, as in the seed's rule.
    """
    labels = [IGNORE_INDEX] * len(input_ids)
    turns = find_assistant_turns(input_ids, special)
    for turn, trained in zip(turns, trained_turns(turns, mode, overrides)):
        if trained and turn.ans_end is not None:
            end = min(turn.label_end, len(input_ids))
            labels[turn.ans_start : end] = input_ids[turn.ans_start : end]
    return labels


def count_trained(labels: Sequence[int] | None) -> int:
    """Tokens with a label (list.count runs in C: this is called for every sample of an audit)."""
    if not labels:
        return 0
    return len(labels) - list(labels).count(IGNORE_INDEX)


def pad_runs(input_ids: Sequence[int] | None, image_pad: int) -> list[int]:
    """Lengths of the runs of image pads: one run per image unless a cut split or joined them."""
    runs: list[int] = []
    previous = None
    for token in input_ids or ():
        if token == image_pad:
            if previous == image_pad:
                runs[-1] += 1
            else:
                runs.append(1)
        previous = token
    return runs
