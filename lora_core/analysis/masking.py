"""Mask Inspector core: one sample token by token, what the loss is computed on, and why.

Ids and labels come only from the encoder (`lora_core.qwen.encoder`), the trainer's own path under the
chosen recipe. This module adds what a person needs to read them:
a class and a display text per token, the rule's positions per assistant turn, where `max_length`
cuts, plain-language verdicts, the known pitfalls, and what the history costs. No gradio here; the
tab (`ui/inspector.py`) and the dataset audit (`lora_core/analysis/audit.py`) both call it.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

from lora_core.data.agent import parse_answer, point_problems, shown_point
from lora_core.data.samples import Sample, SampleFormatError
from lora_core.qwen.chat import (
    IGNORE_INDEX,
    AssistantTurn,
    LabelMode,
    count_trained,
    find_assistant_turns,
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
