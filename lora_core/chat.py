"""Chat rendering and loss labels: the one path from messages to (input_ids, labels).

The Resolution Lab, the Mask Inspector, the exporter and the trainer all call `render_chat` and
`build_labels`; nothing else turns messages into ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Sequence

from .geometry import Geometry, ImageSettings, geometry

IGNORE_INDEX = -100
IM_START_ID = 151644
IM_END_ID = 151645
ASSISTANT_ID = 77091
NEWLINE_ID = 198
IMAGE_PAD_ID = 151655
VISION_START_ID = 151652
VISION_END_ID = 151653

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
    text: str  # the template's output, one <|image_pad|> per image
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
    image_sizes: Sequence[tuple[int, int]],
    settings: ImageSettings | None = None,
    chat_template: str | None = None,
    add_generation_prompt: bool = False,
) -> RenderedChat:
    """Render messages with the model's chat template and expand each image's pads.

    `image_sizes` are the (width, height) of the images in order of appearance; each image's pad
    count is `geometry(width, height, settings).visual_tokens`, exactly as the processor expands it.
    """
    settings = settings or ImageSettings()
    expected = count_images(messages)
    if expected != len(image_sizes):
        raise ValueError(f"The messages hold {expected} image(s) but {len(image_sizes)} image size(s) were given.")
    geometries = [geometry(w, h, settings) for w, h in image_sizes]
    text = tokenizer.apply_chat_template(
        list(messages),
        chat_template=chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    placeholders = [i for i, token in enumerate(ids) if token == IMAGE_PAD_ID]
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
        expanded.extend([IMAGE_PAD_ID] * geom.visual_tokens)
        previous = position + 1
    expanded.extend(ids[previous:])
    assistant_indices = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    overrides = [messages[i].get("loss") for i in assistant_indices]
    return RenderedChat(text, expanded, spans, geometries, assistant_indices, overrides)


@dataclass(frozen=True)
class AssistantTurn:
    """Positions of one assistant turn in input_ids, named as in the seed's _create_labels."""

    im_start: int  # <|im_start|>
    role: int  # the `assistant` token
    ans_start: int  # first answer token (role + 2: skips `assistant` and the newline)
    ans_end: int | None  # the closing <|im_end|>, None when the sequence ends first

    @property
    def label_end(self) -> int:
        """Exclusive end of the trained span: through <|im_end|> and the newline after it."""
        return self.ans_end + 2 if self.ans_end is not None else self.ans_start


def find_assistant_turns(input_ids: Sequence[int]) -> list[AssistantTurn]:
    turns = []
    length = len(input_ids)
    for pos in range(1, length):
        if input_ids[pos] == ASSISTANT_ID and input_ids[pos - 1] == IM_START_ID:
            ans_start = pos + 2
            ans_end = ans_start
            while ans_end < length and input_ids[ans_end] != IM_END_ID:
                ans_end += 1
            turns.append(AssistantTurn(pos - 1, pos, ans_start, ans_end if ans_end < length else None))
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
    input_ids: Sequence[int], mode: LabelMode | str = LabelMode.LAST, overrides: Sequence[bool | None] = ()
) -> list[int]:
    """Labels for input_ids: answer tokens of the chosen assistant turns, IGNORE_INDEX elsewhere.

    A turn is trained from ans_start through its <|im_end|> and the newline after it; a turn whose
    <|im_end|> is missing (cut by truncation) is not trained, as in the seed's rule.
    """
    labels = [IGNORE_INDEX] * len(input_ids)
    turns = find_assistant_turns(input_ids)
    for turn, trained in zip(turns, trained_turns(turns, mode, overrides)):
        if trained and turn.ans_end is not None:
            end = min(turn.label_end, len(input_ids))
            labels[turn.ans_start : end] = input_ids[turn.ans_start : end]
    return labels


def count_trained(labels: Sequence[int]) -> int:
    return sum(1 for label in labels if label != IGNORE_INDEX)


@dataclass
class EncodedSample:
    """A rendered chat cut to max_length, with its labels: exactly what the trainer feeds the model."""

    rendered: RenderedChat
    input_ids: list[int]
    labels: list[int]
    full_length: int
    max_length: int | None

    @property
    def truncated(self) -> bool:
        return len(self.input_ids) < self.full_length

    @property
    def trained_tokens(self) -> int:
        return count_trained(self.labels)

    @property
    def image_tokens(self) -> int:
        return sum(end - start for start, end in self.rendered.image_spans)

    def cut_inside_image(self) -> int | None:
        """Index of the image whose pads the cut splits, if any (the processor would then refuse the sample)."""
        cut = len(self.input_ids)
        for index, (start, end) in enumerate(self.rendered.image_spans):
            if start < cut < end:
                return index
        return None


def encode_sample(
    messages: Sequence[dict],
    tokenizer,
    image_sizes: Sequence[tuple[int, int]],
    settings: ImageSettings | None = None,
    chat_template: str | None = None,
    mode: LabelMode | str = LabelMode.LAST,
    max_length: int | None = None,
) -> EncodedSample:
    """Render, truncate to max_length, then label: the seed's order, so an answer cut before its
    <|im_end|> is not trained at all."""
    rendered = render_chat(messages, tokenizer, image_sizes, settings, chat_template)
    return encode_rendered(rendered, mode, max_length)


def encode_rendered(
    rendered: RenderedChat, mode: LabelMode | str = LabelMode.LAST, max_length: int | None = None
) -> EncodedSample:
    """Truncate an already rendered chat to max_length, then label it (encode_sample's second half),
    so a mode or max_length change does not render again."""
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}.")
    ids = rendered.input_ids[:max_length] if max_length else list(rendered.input_ids)
    labels = build_labels(ids, mode, rendered.loss_overrides)
    return EncodedSample(rendered, ids, labels, len(rendered.input_ids), max_length)
