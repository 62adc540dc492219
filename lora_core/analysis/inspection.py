"""Everything the Mask Inspector shows for one sample: the analysis, the token view and the history cost."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lora_core.analysis.history import HistoryCost, history_cost
from lora_core.analysis.masking import MaskAnalysis, analyse_sample
from lora_core.analysis.token_view import token_classes, token_texts
from lora_core.data.samples import Sample
from lora_core.qwen.chat import LabelMode, build_labels, parse_label_mode
from lora_core.qwen.encoder import DEFAULT_PLACEHOLDER_SIZE, Encoder


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
