"""Dataset audit: every sample through the trainer's path, counted — lengths against max_length, samples
that train on nothing, targets the cut removes, cuts through image pads, pitfalls.

Each distinct sample is rendered once (tokenizing is the cost); image sizes come from file headers,
read once per file; the image-token cost of other settings and recipes is computed from those sizes
with their encoders' geometry instead of re-rendering, since only the pad counts change. No gradio here; the
tab passes a progress callback. `python -m lora_core audit DATASET` is registered from here.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from lora_core.analysis.masking import DEFAULT_MAX_LENGTH, ERROR, WARN, MaskAnalysis, analyse_encoded, check_message_texts
from lora_core.analysis.resolution import NamedSetting, preset_settings
from lora_core.data.datasets import Dataset, read_dataset
from lora_core.data.images import check_images, read_image_size
from lora_core.qwen.encoder import DEFAULT_PLACEHOLDER_SIZE, Encoder

Progress = Callable[[int, int], None]


@dataclass
class AuditRow:
    number: int  # 1-based position in the dataset
    where: str  # "line 12", "record 3"
    sample_id: str | None
    source_format: str | None = None
    error: str | None = None  # the sample could not be read or rendered
    images: int = 0
    placeholder_images: int = 0
    image_tokens: int = 0
    length: int = 0  # tokens before the cut
    kept_length: int = 0  # tokens the trainer keeps
    trained_tokens: int = 0  # after the cut
    target_tokens: int = 0  # what the rule picks, before the cut
    truncated: bool = False
    dropped: bool = False  # the recipe drops the row (ms-swift truncation_strategy delete)
    truncated_target: bool = False
    zero_trained: bool = False
    cut_inside_image: int | None = None  # 0-based image index
    trains_history_instead: bool = False
    pitfalls: list[str] = field(default_factory=list)  # finding codes
    problems: list[str] = field(default_factory=list)  # the error and warning sentences
    lengths_by_setting: dict[str, int] = field(default_factory=dict)
    image_tokens_by_setting: dict[str, int] = field(default_factory=dict)

    @property
    def has_problem(self) -> bool:
        return bool(self.error or self.problems)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditReport:
    dataset: str
    form: str
    mode: str
    max_length: int | None
    settings: str
    rows: list[AuditRow]
    totals: dict
    by_setting: list[dict]
    recipe: str = "native"
    recipe_options: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "form": self.form,
            "recipe": self.recipe,
            "recipe_options": self.recipe_options,
            "mode": self.mode,
            "max_length": self.max_length,
            "settings": self.settings,
            "totals": self.totals,
            "by_setting": self.by_setting,
            "rows": [row.as_dict() for row in self.rows],
        }

    @property
    def problem_rows(self) -> list[AuditRow]:
        return [row for row in self.rows if row.has_problem]


def fill_row(row: AuditRow, analysis: MaskAnalysis) -> None:
    row.image_tokens = analysis.image_tokens
    row.length = len(analysis.ids)
    row.kept_length = len(analysis.encoded.input_ids or [])
    row.dropped = analysis.encoded.dropped
    row.trained_tokens = analysis.trained_tokens
    row.target_tokens = analysis.target_tokens
    row.truncated = analysis.encoded.truncated
    row.truncated_target = analysis.truncated_target
    row.zero_trained = analysis.zero_trained
    row.cut_inside_image = analysis.cut_inside_image
    row.trains_history_instead = analysis.trains_history_instead
    row.pitfalls = [finding.code for finding in analysis.pitfalls]
    row.problems = [finding.text for finding in analysis.findings if finding.level in (ERROR, WARN)]


def audit_dataset(
    dataset: Dataset,
    encoder: Encoder,
    placeholder_size: tuple[int, int] | None = DEFAULT_PLACEHOLDER_SIZE,
    compare: list[NamedSetting] | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit every sample of `dataset` under `encoder`'s recipe; `compare` settings (default: the Lab's
    presets) get image-token totals."""
    if compare is None:
        compare = [NamedSetting("current", f"this audit's setting ({encoder.recipe.describe()})", encoder.recipe),
                   *preset_settings(encoder.checkpoint_settings)]
    size_of_file: dict[Path, tuple[int, int]] = {}
    tokens_of: dict[tuple, int] = {}
    seen: dict[str, AuditRow] = {}
    rows: list[AuditRow] = []
    total = len(dataset)
    for index, entry in enumerate(dataset.entries):
        row = AuditRow(entry.number, entry.where, entry.sample_id)
        rows.append(row)
        try:
            sample = dataset.sample(index)
            row.source_format = sample.source_format
            row.images = len(sample.images)
            row.placeholder_images = sum(1 for path in sample.images if path is None)
            if row.placeholder_images and placeholder_size is None:
                raise ValueError("its images are inline data with no file; give a placeholder screenshot size.")
            sizes = []
            for path in sample.images:
                if path is None:
                    sizes.append(tuple(placeholder_size))
                    continue
                if path not in size_of_file:
                    size_of_file[path] = read_image_size(path)
                sizes.append(size_of_file[path])
            key = json.dumps([sample.messages, sizes], ensure_ascii=False, sort_keys=True)
            if key in seen:
                copy_results(seen[key], row)
            else:
                check_message_texts(sample.messages)
                encoded = encoder.encode(sample, placeholder_size, sizes=sizes)
                fill_row(row, analyse_encoded(encoded, encoder))
                text_tokens = row.length - row.image_tokens
                for named in compare:
                    pads = 0
                    for size in sizes:
                        if (size, named.key) not in tokens_of:
                            tokens_of[(size, named.key)] = named.recipe.geometry(*size).visual_tokens
                        pads += tokens_of[(size, named.key)]
                    row.image_tokens_by_setting[named.key] = pads
                    row.lengths_by_setting[named.key] = text_tokens + pads
                seen[key] = row
        except (ValueError, OSError) as error:  # SampleFormatError and ImageInputError are ValueErrors
            row.error = str(error).splitlines()[0] if str(error) else type(error).__name__
        except Exception as error:  # one odd record must not stop the audit of the others
            row.error = f"could not be analysed ({type(error).__name__}: {error})"
        if progress is not None:
            progress(index + 1, total)
    return AuditReport(
        dataset=dataset.name,
        form=dataset.form,
        mode=encoder.recipe.label_mode.value,
        max_length=encoder.max_length,
        settings=encoder.settings.describe(),
        rows=rows,
        totals=totals(rows, encoder.max_length, len(seen)),
        by_setting=setting_totals(rows, compare, encoder.max_length),
        recipe=encoder.recipe.name,
        recipe_options=dict(encoder.recipe.options),
    )


RESULT_FIELDS = ("image_tokens", "length", "kept_length", "trained_tokens", "target_tokens", "truncated", "dropped",
                 "truncated_target", "zero_trained", "cut_inside_image", "trains_history_instead")


def copy_results(source: AuditRow, row: AuditRow) -> None:
    """A duplicate sample: same ids, same labels, same findings."""
    for name in RESULT_FIELDS:
        setattr(row, name, getattr(source, name))
    row.pitfalls = list(source.pitfalls)
    row.problems = list(source.problems)
    row.lengths_by_setting = dict(source.lengths_by_setting)
    row.image_tokens_by_setting = dict(source.image_tokens_by_setting)


def spread(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "median": 0, "p90": 0, "max": 0, "mean": 0.0}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }


def totals(rows: list[AuditRow], max_length: int | None, distinct: int) -> dict:
    read = [row for row in rows if not row.error]
    pitfalls: dict[str, int] = {}
    for row in read:
        for code in set(row.pitfalls):
            pitfalls[code] = pitfalls.get(code, 0) + 1
    lengths = [row.length for row in read]
    return {
        "samples": len(rows),
        "read": len(read),
        "errors": len(rows) - len(read),
        "distinct": distinct,
        "zero_trained": sum(row.zero_trained for row in read),
        "truncated": sum(row.truncated for row in read),
        "dropped": sum(row.dropped for row in read),
        "truncated_target": sum(row.truncated_target for row in read),
        "cut_inside_image": sum(row.cut_inside_image is not None for row in read),
        "trains_history_instead": sum(row.trains_history_instead for row in read),
        "over_max_length": sum(1 for n in lengths if max_length and n > max_length),
        "placeholder_images": sum(row.placeholder_images for row in read),
        "pitfalls": dict(sorted(pitfalls.items())),
        "length": spread(lengths),
        "trained_tokens": {**spread([row.trained_tokens for row in read]),
                           "total": sum(row.trained_tokens for row in read)},
        "image_tokens": {**spread([row.image_tokens for row in read]), "total": sum(row.image_tokens for row in read)},
    }


def setting_totals(rows: list[AuditRow], compare: list[NamedSetting], max_length: int | None) -> list[dict]:
    read = [row for row in rows if not row.error]
    result = []
    for named in compare:
        pads = [row.image_tokens_by_setting.get(named.key, 0) for row in read]
        lengths = [row.lengths_by_setting.get(named.key, 0) for row in read]
        result.append({
            "key": named.key,
            "label": named.label,
            "image_tokens_total": sum(pads),
            "image_tokens_mean": round(statistics.fmean(pads), 1) if pads else 0.0,
            "median_length": statistics.median(lengths) if lengths else 0,
            "max_length_seen": max(lengths, default=0),
            "over_max_length": sum(1 for n in lengths if max_length and n > max_length),
        })
    return result


# ---------------------------------------------------------------- CLI: python -m lora_core audit


def placeholder_size_arg(text: str) -> tuple[int, int]:
    import argparse

    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1080x2400, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return width, height


def register(commands, add_image_options) -> None:
    from lora_core.cli_args import positive_int

    audit = commands.add_parser(
        "audit", help="lengths, trained tokens, truncated targets and pitfalls of every sample in a dataset")
    audit.add_argument("dataset", type=Path,
                       help="DATASET.jsonl or .json (native, LLaMA-Factory / ms-swift, ShareGPT or a MAI-UI message "
                            "list; detected from the content); image paths relative to it")
    audit.add_argument("--mode", choices=["last", "all"], default=None, help="native recipe: label mode (last)")
    audit.add_argument("--max-length", type=positive_int, default=None,
                       help=f"native recipe: cut each sample here before labelling (default {DEFAULT_MAX_LENGTH})")
    audit.add_argument("--placeholder-size", type=placeholder_size_arg, default=DEFAULT_PLACEHOLDER_SIZE,
                       metavar="WxH", help="size of inline images with no file, e.g. MAI-UI's [IMAGE_DATA] "
                                           "(default 1080x2400)")
    add_image_options(audit)
    audit.set_defaults(handler=run_audit)


def run_audit(args) -> dict:
    from lora_core.cli_args import encoder_from_args

    dataset = read_dataset(args.dataset)
    refuse_unreadable(dataset)  # before the model loads
    encoder, model_name = encoder_from_args(args, native_defaults={"max_length": DEFAULT_MAX_LENGTH})
    report = audit_dataset(dataset, encoder, args.placeholder_size)
    if report.totals["read"] == 0:
        raise ValueError(f"No sample of {dataset.name} could be read: {report.rows[0].error}")
    return {"model": model_name, **report.as_dict()}


def refuse_unreadable(dataset: Dataset) -> None:
    """Refuse a dataset none of whose samples can be read (record or image headers), without loading a model;
    stops at the first sample that can be read."""
    first = None
    for index in range(len(dataset)):
        try:
            sample = dataset.sample(index)
            check_images(sample.images, sample.where)
            return
        except (ValueError, OSError) as error:
            first = first or (str(error).splitlines()[0] if str(error) else type(error).__name__)
    if first is not None:
        raise ValueError(f"No sample of {dataset.name} could be read: {first}")
