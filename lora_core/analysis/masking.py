"""Mask Inspector core: one sample token by token, what the loss is computed on, and why.

Ids and labels come only from the encoder (`lora_core.qwen.encoder`), the trainer's own path under the
chosen recipe. This module adds what a person needs to read them:
a class and a display text per token, the rule's positions per assistant turn, where `max_length`
cuts, plain-language verdicts, the known pitfalls, and what the history costs. No gradio here; the
tab (`ui/inspector.py`) and the dataset audit (`lora_core/analysis/audit.py`) both call it.
"""
from __future__ import annotations

import codecs
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

from lora_core.data.agent import parse_answer, point_problems, shown_point
from lora_core.data.samples import Sample, SampleFormatError
from lora_core.qwen.chat import (
    IGNORE_INDEX,
    AssistantTurn,
    LabelMode,
    build_labels,
    count_trained,
    find_assistant_turns,
    parse_label_mode,
    trained_turns,
)
from lora_core.qwen.encoder import DEFAULT_PLACEHOLDER_SIZE, Encoded, Encoder
from lora_core.qwen.special_tokens import SpecialTokens

DEFAULT_MAX_LENGTH = 6200  # the seed's training.sft.max_length

# Token classes, in legend order, with what each means for the loss.
SYSTEM, USER, IMAGE, HISTORY, TARGET, SPECIAL = "system", "user", "image", "history", "target", "special"
TOKEN_CLASSES: dict[str, str] = {
    SYSTEM: "system prompt (masked)",
    USER: "user / tool turn (masked)",
    IMAGE: "image pads (masked)",
    HISTORY: "assistant, not trained (history)",
    TARGET: "trained: the loss is computed here",
    SPECIAL: "template tokens (masked)",
}

# Literal text that the tokenizer turns into template tokens when it appears inside a message.
TEMPLATE_TOKEN_TEXTS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>")
IMAGE_TOKEN_TEXTS = ("<|image_pad|>", "<|video_pad|>")

# Finding levels, worst first.
ERROR, WARN, INFO, OK = "error", "warn", "info", "ok"


@dataclass(frozen=True)
class Finding:
    """One sentence for the user: `error` = the sample fails or trains on nothing / the wrong thing."""

    level: str
    code: str
    text: str


@dataclass
class TurnStatus:
    """One assistant turn: its positions (in the uncut sequence) and what the loss does with it."""

    number: int  # 1-based among assistant turns
    turn: AssistantTurn
    message_index: int | None  # index in the messages, when the template rendered one turn per message
    override: bool | None  # the message's `loss` flag
    chosen: bool  # picked by the mode and the overrides
    trained_full: int  # tokens trained if nothing were cut
    trained: int  # tokens trained after the cut: what the trainer uses
    is_target: bool  # the sample's final message, the answer it was built to teach

    @property
    def answer_tokens(self) -> int:
        """ans_start through <|im_end|> and its newline, in the uncut sequence."""
        return self.turn.label_end - self.turn.ans_start

    def status(self, cut: int | None) -> str:
        if self.trained and self.trained == self.trained_full:
            return "trained"
        if self.trained:
            return f"trained on {self.trained} of {self.trained_full} tokens (cut)" if self.trained_full else \
                "trained instead of the cut target"
        if self.trained_full:
            return "lost to the cut"
        if self.override is False:
            return "masked: loss false"
        if self.chosen and self.turn.ans_end is None:
            return "masked: no <|im_end|>"
        if cut is not None and self.turn.role >= cut:
            return "dropped by the cut"
        return "masked (history)" if not self.is_target else "masked"


@dataclass
class MaskAnalysis:
    """What the trainer makes of one rendered sample, and every finding about it."""

    messages: list[dict]
    encoded: Encoded  # the kept ids and their labels: exactly what the recipe's trainer feeds the model
    special: SpecialTokens
    mode: LabelMode
    max_length: int | None
    turns: list[TurnStatus]
    verdicts: list[Finding]
    pitfalls: list[Finding]
    placeholder_images: int = 0

    @property
    def ids(self) -> list[int]:
        """The uncut ids (with anything the recipe adds, such as a think block)."""
        return self.encoded.full_input_ids

    @property
    def full_labels(self) -> list[int]:
        """The labels were nothing cut."""
        return self.encoded.full_labels

    @cached_property
    def image_spans(self) -> list[tuple[int, int]]:
        """[start, end) of each image's pads in `ids` (remembered: each call of Encoded.image_spans scans the ids)."""
        return self.encoded.image_spans

    @cached_property
    def kept(self) -> set[int]:
        return set(self.encoded.kept or ())

    @cached_property
    def kept_labels(self) -> list[int]:
        """The trainer's labels placed on the uncut positions; positions that are not kept get IGNORE_INDEX."""
        labels = [IGNORE_INDEX] * len(self.ids)
        for position, label in zip(self.encoded.kept or (), self.encoded.labels or ()):
            labels[position] = label
        return labels

    @property
    def cut(self) -> int | None:
        """Index of the first dropped token, or None when the sample fits."""
        return self.encoded.cut

    @cached_property
    def trained_tokens(self) -> int:
        return count_labelled(self.encoded.labels or [])

    @cached_property
    def target_tokens(self) -> int:
        """Tokens the mode and overrides pick, before any cut."""
        return count_labelled(self.full_labels)

    @property
    def zero_trained(self) -> bool:
        return self.trained_tokens == 0

    @property
    def truncated_target(self) -> bool:
        """At least one token the rule picks is not kept."""
        kept = self.kept
        return self.cut is not None and any(
            label != IGNORE_INDEX and position not in kept for position, label in enumerate(self.full_labels))

    @cached_property
    def cut_inside_image(self) -> int | None:
        return self.encoded.cut_inside_image()

    @property
    def trains_history_instead(self) -> bool:
        """The cut made the trainer pick an answer the rule would not have picked (mode `last`)."""
        return any(t.trained and not t.trained_full for t in self.turns)

    @property
    def image_tokens(self) -> int:
        return sum(end - start for start, end in self.image_spans)

    @property
    def findings(self) -> list[Finding]:
        return self.verdicts + self.pitfalls


# ---------------------------------------------------------------- rendering a sample


def check_message_texts(messages: Sequence[dict]) -> None:
    """Refuse literal image tokens in text: the template would count them as images that do not exist."""
    for number, message in enumerate(messages, start=1):
        for text in message_texts(message):
            for literal in IMAGE_TOKEN_TEXTS:
                if literal in text:
                    raise SampleFormatError(
                        f"Message {number} ({message.get('role')}) contains the literal text {literal}; the tokenizer "
                        "reads it as an image placeholder with no image. Remove it from the text."
                    )


def message_texts(message: dict) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return [item.get("text", "") for item in content or [] if isinstance(item, dict) and item.get("type") == "text"]


def message_text(message: dict) -> str:
    return "".join(message_texts(message))


_RENDER_CACHE: OrderedDict = OrderedDict()
_RENDER_CACHE_SIZE = 16
_RENDER_LOCK = threading.Lock()  # the app serves several users from worker threads


def render_cached(encoder: Encoder, sample: Sample, geometries):
    """`encoder.render`, remembered for the last few samples so a mode or max_length change does not re-tokenize.

    Callers must not modify the returned object.
    """
    key = (
        json.dumps(sample.messages, ensure_ascii=False, sort_keys=True),
        tuple((g.resized_width, g.resized_height, g.visual_tokens) for g in geometries),
        id(encoder.tokenizer),
        hash(encoder.chat_template),
    )
    with _RENDER_LOCK:
        if key in _RENDER_CACHE:
            _RENDER_CACHE.move_to_end(key)
            return _RENDER_CACHE[key]
    rendered = encoder.render(sample, geometries)
    with _RENDER_LOCK:
        _RENDER_CACHE[key] = rendered
        while len(_RENDER_CACHE) > _RENDER_CACHE_SIZE:
            _RENDER_CACHE.popitem(last=False)
    return rendered


def analyse_sample(
    sample: Sample,
    encoder: Encoder,
    placeholder_size: tuple[int, int] | None = DEFAULT_PLACEHOLDER_SIZE,
) -> MaskAnalysis:
    """Encode `sample` through the recipe's path and analyse its labels. Raises ValueError with a sentence."""
    check_message_texts(sample.messages)
    geometries, placeholders = encoder.sample_geometries(sample, placeholder_size)
    rendered = render_cached(encoder, sample, geometries)
    encoded = encoder.encode(sample, placeholder_size, rendered=rendered)
    analysis = analyse_encoded(encoded, encoder)
    if placeholders:
        width, height = placeholder_size
        analysis.verdicts.append(Finding(INFO, "placeholder_images", (
            f"{placeholders} image(s) are inline data with no file (MAI-UI's [IMAGE_DATA]); each is counted as a "
            f"{width}×{height} screenshot. Change the placeholder size if your screenshots differ.")))
        analysis.placeholder_images = placeholders
    return analysis


# ---------------------------------------------------------------- labels, turns, verdicts


def analyse_encoded(encoded: Encoded, encoder: Encoder) -> MaskAnalysis:
    messages = encoded.sample.messages
    mode = encoder.recipe.label_mode
    ends_with_answer = bool(messages) and messages[-1].get("role") == "assistant"
    analysis = MaskAnalysis(list(messages), encoded, encoder.special, mode, encoder.max_length, [], [], [])
    analysis.turns = turn_statuses(analysis, ends_with_answer)
    analysis.verdicts = verdicts(analysis)
    analysis.verdicts += [Finding(WARN, "recipe", note) for note in encoded.notes]
    analysis.pitfalls = find_pitfalls(analysis)
    return analysis


def turn_statuses(a: MaskAnalysis, ends_with_answer: bool) -> list[TurnStatus]:
    rendered = a.encoded.rendered
    turns = find_assistant_turns(a.ids, a.special)
    chosen = trained_turns(turns, a.mode, rendered.loss_overrides)
    one_per_message = len(turns) == len(rendered.assistant_message_indices)
    labels, full_labels = a.kept_labels, a.full_labels
    statuses = []
    for index, (turn, picked) in enumerate(zip(turns, chosen)):
        statuses.append(TurnStatus(
            number=index + 1,
            turn=turn,
            message_index=rendered.assistant_message_indices[index] if one_per_message else None,
            override=rendered.loss_overrides[index] if index < len(rendered.loss_overrides) else None,
            chosen=picked,
            trained_full=count_labelled(full_labels[turn.ans_start:turn.label_end]),
            trained=count_labelled(labels[turn.ans_start:turn.label_end]),
            is_target=ends_with_answer and index == len(turns) - 1,
        ))
    return statuses


count_labelled = count_trained


def turn_name(status: TurnStatus) -> str:
    where = f", message {status.message_index + 1}" if status.message_index is not None else ""
    kind = "the final answer" if status.is_target else "a history answer"
    return f"answer {status.number} ({kind}{where})"


def verdicts(a: MaskAnalysis) -> list[Finding]:
    """Plain sentences about what trains, what the cut does, and whether the sample can train at all."""
    found: list[Finding] = []
    trained = [t for t in a.turns if t.trained]
    if trained:
        names = ", ".join(f"{turn_name(t)}: {t.trained}" for t in trained)
        found.append(Finding(OK, "trains", f"Trains on {a.trained_tokens} token(s) — {names}."))
    cut, full = a.cut, len(a.ids)
    if cut is None:
        if a.max_length:
            found.append(Finding(OK, "fits", f"Fits: {full:,} tokens, within max_length {a.max_length:,} "
                                             f"({a.max_length - full:,} to spare)."))
        else:
            found.append(Finding(INFO, "no_max_length", f"No max_length: all {full:,} tokens are kept."))
    else:
        found.append(Finding(WARN, "truncated", (
            f"max_length {a.max_length:,} cuts this {full:,}-token sample: the last {full - cut:,} tokens "
            f"(from #{cut:,}, {describe_position(a, cut)}) are dropped before the labels are built.")))
        for t in a.turns:
            if t.trained_full and t.trained < t.trained_full:
                found.append(Finding(ERROR if not t.trained else WARN, "target_cut", lost_turn_sentence(t, cut)))
        instead = [t for t in a.turns if t.trained and not t.trained_full]
        if instead:
            t = instead[-1]
            found.append(Finding(ERROR, "trains_history_instead", (
                f"Instead the trainer trains tokens {t.turn.ans_start:,}–{t.turn.label_end - 1:,}, {turn_name(t)}: "
                "the last complete answer left before the cut, a step this sample was not built to teach.")))
    if a.zero_trained:
        why = "the cut removed what the rule picks" if a.target_tokens else "the rule picks no complete answer"
        found.append(Finding(ERROR, "zero_trained", f"This sample trains on nothing: {why}."))
    image = a.cut_inside_image
    if image is not None:
        start, end = a.image_spans[image]
        kept = cut - start
        found.append(Finding(ERROR, "cut_inside_image", (
            f"The cut falls inside image {image + 1}'s pads: {kept} of its {end - start} pads are kept. The processor "
            f"still makes {end - start} visual tokens for this image, so its count and the ids disagree and the sample "
            "fails in training (image features and image tokens do not match). Keep fewer screenshots, lower the "
            "image resolution, or raise max_length.")))
    return found


def lost_turn_sentence(t: TurnStatus, cut: int) -> str:
    name = turn_name(t).capitalize()
    if t.trained:
        return f"{name} keeps only {t.trained} of its {t.trained_full} trained tokens: the cut falls after its <|im_end|>."
    if t.turn.ans_start >= cut:
        return f"{name} lies entirely after the cut (it starts at #{t.turn.ans_start:,}): it is not trained."
    kept = cut - t.turn.ans_start
    return (f"{name} is cut after {kept:,} of its {t.answer_tokens:,} tokens, before its <|im_end|>: the seed's rule "
            "(cut first, then label) does not train it at all. A trainer that labels before cutting would train "
            f"those first {kept:,} tokens with no end of turn, teaching the model to stop mid-answer.")


def describe_position(a: MaskAnalysis, index: int) -> str:
    """Where token `index` lies, in words: inside which image or which turn."""
    for number, (start, end) in enumerate(a.image_spans, start=1):
        if start <= index < end:
            return f"inside image {number}'s pads"
    for t in a.turns:
        if t.turn.ans_start <= index < t.turn.label_end:
            return f"inside {turn_name(t)}"
    blocks = block_starts(a.ids, a.special)
    block = max((i for i, start in enumerate(blocks) if start <= index), default=None)
    if block is not None:
        return f"in turn {block + 1} ({block_role(a.ids, blocks[block], a.special)})"
    return "before the first turn"


def block_starts(ids: Sequence[int], special: SpecialTokens) -> list[int]:
    """Positions of every <|im_start|>: one block per rendered message."""
    return [i for i, token in enumerate(ids) if token == special.im_start]


def block_role(ids: Sequence[int], start: int, special: SpecialTokens) -> str:
    return special.role_at(ids, start)


def find_pitfalls(a: MaskAnalysis) -> list[Finding]:
    found: list[Finding] = []
    messages, ids = a.messages, a.ids
    assistant_messages = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    for index in assistant_messages:
        text = message_text(messages[index])
        if "<|im_end|>" in text:
            before = text.split("<|im_end|>", 1)[0]
            found.append(Finding(WARN, "literal_im_end", (
                f"Message {index + 1} (assistant) contains the literal text <|im_end|>. The tokenizer turns it into "
                "the real end-of-turn token, so the rule's scan stops there: only the part before it "
                f"({len(before)} characters), that token and the one token after it are trained, the rest is masked, "
                "and the model learns to end its turn mid-answer. Remove it from the answer.")))
    for index in assistant_messages:
        action = parse_answer(message_text(messages[index])).action
        for key, point, problem in point_problems(action):
            found.append(Finding(ERROR, "bad_coordinate", (
                f"Message {index + 1} (assistant) has the coordinate {shown_point(point)} ({key}): {problem} "
                "Training on it teaches the model a point no screen has, and the export and evaluation cannot place "
                "it. Fix or drop the step.")))
    for number, message in enumerate(messages, start=1):
        text = message_text(message)
        literals = [t for t in TEMPLATE_TOKEN_TEXTS if t in text and not (t == "<|im_end|>" and message.get("role") == "assistant")]
        if literals:
            found.append(Finding(WARN, "template_text", (
                f"Message {number} ({message.get('role')}) contains {', '.join(literals)} as text; the tokenizer reads "
                "it as a template token, which changes where turns seem to start and end.")))
    for number, (start, end) in enumerate(a.image_spans, start=1):
        if any(label != IGNORE_INDEX for label in a.full_labels[start:end]):
            found.append(Finding(ERROR, "image_in_answer", (
                f"Image {number} sits inside an assistant answer that is trained, so its {end - start} pads are in "
                "the loss: the model is taught to write image placeholders. Move the screenshot into a user turn.")))
    if not a.turns:
        found.append(Finding(ERROR, "no_assistant_turn", "No assistant turn: this sample has nothing to train on."))
    elif len(a.turns) != len(assistant_messages):
        found.append(Finding(WARN, "turn_count", (
            f"The ids hold {len(a.turns)} assistant turn(s) for {len(assistant_messages)} assistant message(s); "
            "per-message loss flags are applied by position and may land on the wrong turn.")))
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant" and not message_text(last).strip():
        found.append(Finding(WARN, "empty_target", (
            "The final answer is empty: only <|im_end|> and its newline are trained, which teaches the model to "
            "answer nothing.")))
    if messages and last.get("role") != "assistant":
        trained = [t for t in a.turns if t.trained_full]
        consequence = (f"so the rule trains {turn_name(trained[-1])} instead, a step from the history"
                       if trained and a.mode is LabelMode.LAST else "so there is no target answer to train")
        found.append(Finding(WARN, "last_message_user", (
            f"The last message is a {last.get('role')} turn, {consequence}. A prompt ready for inference (like a MAI-UI "
            "message list) is not a training sample: append the expected answer as an assistant message.")))
    if a.max_length:
        for t in a.turns:
            if t.chosen and t.turn.ans_end is not None and t.answer_tokens > a.max_length:
                found.append(Finding(ERROR, "answer_too_long", (
                    f"{turn_name(t).capitalize()} alone is {t.answer_tokens:,} tokens, more than max_length "
                    f"{a.max_length:,}: no trimming of the history can make it trainable. Shorten the answer or raise "
                    "max_length.")))
    newline_ids = set(a.special.newline) | {a.special.im_end}
    for t in a.turns:
        after_role = t.turn.ans_start - len(a.special.newline)
        if after_role < len(ids) and ids[after_role] not in newline_ids:
            found.append(Finding(INFO, "merged_newline", (
                f"{turn_name(t).capitalize()} starts with whitespace that merges with the template's newline into one "
                "token; the rule's ans_start = position + 2 skips that token, so the answer's leading whitespace is "
                "not trained.")))
    return found


# ---------------------------------------------------------------- display: texts and classes


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


# ---------------------------------------------------------------- history cost


@dataclass(frozen=True)
class Variant:
    """The same sample re-rendered with less history."""

    label: str
    kept: int
    length: int
    saved: int
    fits: bool


@dataclass
class HistoryCost:
    parts: list[tuple[str, int]]  # (what, tokens), in sequence order
    history_tokens: int
    history_images: int  # screenshots before the current turn (the instruction's included)
    history_steps: int  # assistant answers before the current turn
    screenshot_variants: list[Variant] = field(default_factory=list)
    step_variants: list[Variant] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class Layout:
    """Where the instruction, the history, the current turn and the target sit among the messages."""

    head_end: int  # messages[:head_end]: system prompt(s) and the instruction
    current_start: int  # messages[current_start:target]: the current turn (screenshot, question)
    target: int | None  # index of the final assistant message, None if the sample ends on a user turn
    steps: list[tuple[int, int]]  # history steps: [start, end) of messages, each ending with an answer


def sample_layout(messages: Sequence[dict]) -> Layout:
    count = len(messages)
    head_end = 0
    while head_end < count and messages[head_end].get("role") == "system":
        head_end += 1
    if head_end < count and messages[head_end].get("role") == "user":
        head_end += 1
    target = count - 1 if count and messages[-1].get("role") == "assistant" else None
    current_start = target if target is not None else count
    while current_start > head_end and messages[current_start - 1].get("role") != "assistant":
        current_start -= 1
    steps, start = [], head_end
    for index in range(head_end, current_start):
        if messages[index].get("role") == "assistant":
            steps.append((start, index + 1))
            start = index + 1
    return Layout(head_end, current_start, target, steps)


def image_positions(messages: Sequence[dict]) -> list[int]:
    """The message index of each image, in order."""
    return [
        index
        for index, message in enumerate(messages)
        if isinstance(message.get("content"), list)
        for item in message["content"]
        if item.get("type") in ("image", "image_url")
    ]


def without_images(messages: Sequence[dict], sizes: Sequence, drop: set[int]) -> tuple[list[dict], list]:
    """Remove the images numbered in `drop` (0-based, in order); a user message left empty goes too."""
    result, kept_sizes, number = [], [], 0
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            result.append(message)
            continue
        items = []
        for item in content:
            if item.get("type") in ("image", "image_url"):
                if number not in drop:
                    items.append(item)
                    kept_sizes.append(sizes[number])
                number += 1
            else:
                items.append(item)
        if items or message.get("role") != "user":
            result.append({**message, "content": items})
    return result, kept_sizes


def spaced_counts(total: int, most: int = 6) -> list[int]:
    """Up to `most` values from total-1 down to 0, denser near 0."""
    if total <= most:
        return list(range(total - 1, -1, -1))
    values = {0, 1, 2, 3, total // 2, total - 1}
    return sorted((v for v in values if 0 <= v < total), reverse=True)


def history_cost(a: MaskAnalysis, encoder: Encoder) -> HistoryCost:
    """What the history costs in tokens and what fewer screenshots or fewer steps would save.

    Each variant is re-encoded by the encoder, so its length is the trainer's.
    """
    messages, ids = a.messages, a.ids
    layout = sample_layout(messages)
    blocks = block_starts(ids, a.special)
    geometries = a.encoded.geometries
    sample = a.encoded.sample

    def variant_length(variant_messages, variant_geometries) -> int:
        variant = Sample(variant_messages, [None] * len(variant_geometries), where=sample.where)
        rendered = render_cached(encoder, variant, variant_geometries)
        return len(encoder.recipe.encode(rendered, a.special).full_input_ids)

    note = None
    parts: list[tuple[str, int]] = []
    if len(blocks) == len(messages):
        bounds = blocks + [len(ids)]

        def tokens(first: int, last: int) -> int:  # messages[first:last]
            return bounds[last] - bounds[first] if last > first else 0

        def pads(first: int, last: int) -> int:
            low, high = bounds[first], bounds[last]
            return sum(min(end, high) - max(start, low) for start, end in a.image_spans
                       if start < high and end > low)

        system_end = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
        history_start, history_end = layout.head_end, layout.current_start
        answers = sum(tokens(i, i + 1) for i in range(history_start, history_end) if messages[i].get("role") == "assistant")
        history_pads = pads(history_start, history_end)
        target_end = layout.target + 1 if layout.target is not None else len(messages)
        parts = [
            ("system prompt", tokens(0, system_end)),
            ("instruction", tokens(system_end, layout.head_end)),
            ("history answers", answers),
            ("history screenshots", history_pads),
            ("history, other turns", tokens(history_start, history_end) - answers - history_pads),
            ("current turn", tokens(layout.current_start, layout.target if layout.target is not None else len(messages))),
            ("target answer", tokens(layout.target, target_end) if layout.target is not None else 0),
        ]
        history_tokens = tokens(history_start, history_end)
    else:
        note = "The template merged some messages, so tokens are counted by role rather than by message."
        roles = token_roles(ids, a.special)
        for role in ("system", "user", "assistant"):
            parts.append((f"{role} turns", sum(1 for r, t in zip(roles, ids) if r == role and t != a.special.image_pad)))
        parts.append(("image pads", a.image_tokens))
        history_tokens = 0
    images_at = image_positions(messages)
    removable = [n for n, at in enumerate(images_at) if at < layout.current_start]
    cost = HistoryCost(parts, history_tokens, len(removable), len(layout.steps), note=note)
    full = len(ids)
    limit = a.max_length or float("inf")
    for keep in spaced_counts(len(removable)):
        drop = set(removable[: len(removable) - keep])
        variant, kept_geometries = without_images(messages, geometries, drop)
        length = variant_length(variant, kept_geometries)
        cost.screenshot_variants.append(Variant(f"keep the last {keep} earlier screenshot(s)", keep, length, full - length,
                                                length <= limit))
    for keep in spaced_counts(len(layout.steps)):
        dropped = layout.steps[: len(layout.steps) - keep]
        cut_from, cut_to = (dropped[0][0], dropped[-1][1]) if dropped else (layout.head_end, layout.head_end)
        drop_images = {n for n, at in enumerate(images_at) if cut_from <= at < cut_to}
        trimmed = list(messages[:cut_from]) + list(messages[cut_to:])
        kept_geometries = [g for n, g in enumerate(geometries) if n not in drop_images]
        length = variant_length(trimmed, kept_geometries)
        cost.step_variants.append(Variant(f"keep {keep} history step(s)", keep, length, full - length, length <= limit))
    return cost


# ---------------------------------------------------------------- the whole inspection


@dataclass
class Inspection:
    """Everything the tab shows for one sample."""

    analysis: MaskAnalysis
    texts: list[str]
    partial: set[int]
    classes: list[str]
    changed: set[int]  # tokens whose label differs under compare_mode
    compare_mode: LabelMode | None
    history: HistoryCost | None

    @property
    def counts(self) -> dict[str, int]:
        a = self.analysis
        kept = len(a.encoded.input_ids or [])
        return {
            "total": len(a.ids),
            "kept": kept,
            "image": a.image_tokens,
            "trained": a.trained_tokens,
            "masked": kept - a.trained_tokens,
            "dropped": len(a.ids) - kept,
            "changed": len(self.changed),
        }


def rule_description(mode: LabelMode, overrides: Sequence[bool | None]) -> str:
    if mode is LabelMode.LAST:
        text = ("Mode last — the seed's _create_labels (§6.1.3): find every <|im_start|>assistant, keep the last one; "
                "ans_start = its position + 2 (skipping `assistant` and the newline); scan to the first <|im_end|> "
                "(ans_end); train ans_start … ans_end + 1, i.e. through <|im_end|> and the newline after it. "
                "Everything else is −100.")
    else:
        text = ("Mode all — every assistant answer is labelled the same way (the official Qwen3-VL code, "
                "LLaMA-Factory without mask_history): ans_start … ans_end + 1 of each turn; everything else is −100.")
    flags = [f"answer {n}: loss {str(flag).lower()}" for n, flag in enumerate(overrides, start=1) if flag is not None]
    if flags:
        text += " Per-message loss flags (as ms-swift reads them) win over the mode: " + ", ".join(flags) + "."
    text += " The sequence is cut to max_length first, so a turn whose <|im_end|> is cut is not trained."
    return text


def inspect_sample(
    sample: Sample,
    encoder: Encoder,
    placeholder_size: tuple[int, int] | None = DEFAULT_PLACEHOLDER_SIZE,
    compare_mode: LabelMode | str | None = None,
    with_history: bool = True,
) -> Inspection:
    analysis = analyse_sample(sample, encoder, placeholder_size)
    texts, partial = token_texts(encoder.tokenizer, analysis.ids, encoder.special.image_pad)
    changed: set[int] = set()
    compare = parse_label_mode(compare_mode) if compare_mode else None
    if compare is not None and compare is not analysis.mode and analysis.encoded.input_ids is not None:
        other = build_labels(analysis.encoded.input_ids, encoder.special, compare,
                             analysis.encoded.rendered.loss_overrides)
        changed = {analysis.encoded.kept[i] for i, (x, y) in enumerate(zip(other, analysis.encoded.labels)) if x != y}
    history = history_cost(analysis, encoder) if with_history else None
    return Inspection(analysis, texts, partial, token_classes(analysis), changed, compare, history)
