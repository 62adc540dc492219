"""Whole datasets as people have them, read without guessing from the file name.

A dataset is a list of records plus the folder its image paths are relative to. The form is detected
from the content:
- JSONL: one record per line (native samples, LLaMA-Factory / ms-swift `messages` + `images`);
- a JSON list of records (LLaMA-Factory's `mllm_demo.json`), or of message lists;
- one record (`{"messages": [...]}`) or one bare message list (a MAI-UI message list).
ShareGPT records (`conversations` with `from`/`value`) are turned into `messages`. Each record becomes
a `Sample` only when asked, so one bad record never hides the others; its error names its line
or its position.

Other sources (the demo trajectories, an annotation store) plug in with `records_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lora_core.data.json_input import MAX_JSON_BYTES as MAX_DATASET_BYTES  # noqa: F401  (the one file limit)
from lora_core.data.json_input import InvalidJson, JsonInputError, loads, read_text
from lora_core.data.samples import Sample, SampleFormatError, normalize_record

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "observation": "tool", "function_call": "assistant", "tool": "tool"}


@dataclass
class DatasetEntry:
    number: int  # 1-based position among the records
    where: str  # how to find it in the file: "line 12", "record 3"
    record: dict | None
    error: str | None = None  # why the record could not even be parsed

    @property
    def sample_id(self) -> str | None:
        if isinstance(self.record, dict):
            value = self.record.get("id")
            if isinstance(value, (str, int)):
                return str(value)
        return None

    def title(self, width: int = 60) -> str:
        """A short name for lists: its id, else the first user text."""
        if self.error:
            return f"{self.where}: unreadable"
        name = self.sample_id
        if not name and isinstance(self.record, dict):
            name = first_user_text(self.record.get("messages") or [])
        name = " ".join((name or "").split())
        if len(name) > width:
            name = name[: width - 1] + "…"
        return f"{self.where}: {name}" if name else self.where


@dataclass
class Dataset:
    name: str
    base_dir: Path  # image paths resolve here and must stay inside it
    form: str  # "JSONL", "JSON list", "single record", "message list", or the plugged-in source's name
    entries: list[DatasetEntry]

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, index: int) -> Sample:
        """The `index`-th record (0-based) as a Sample; raises SampleFormatError naming where it is."""
        if not 0 <= index < len(self.entries):
            raise SampleFormatError(f"{self.name} has {len(self.entries)} sample(s); there is no sample {index + 1}.")
        entry = self.entries[index]
        if entry.error:
            raise SampleFormatError(f"{self.name}, {entry.where}: {entry.error}")
        sample = normalize_record(entry.record, self.base_dir, where=f"{self.name}, {entry.where}")
        if sample.id is None:
            sample.id = entry.where.replace(" ", "-")
            sample.source = sample.source or sample.id
        return sample

    @property
    def errors(self) -> int:
        return sum(1 for entry in self.entries if entry.error)


def first_user_text(messages) -> str:
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") in ("user", "human"):
            content = message.get("content")
            if isinstance(content, str):
                return content.replace("<image>", "")
            if isinstance(content, list):
                return " ".join(i.get("text", "") for i in content if isinstance(i, dict) and i.get("type") == "text")
    return ""


def as_record(data, where: str) -> dict:
    """One parsed JSON value as a record with `messages`; ShareGPT and bare message lists are converted."""
    if isinstance(data, list):
        return {"messages": data}
    if not isinstance(data, dict):
        raise SampleFormatError(f"{where} is a JSON {type(data).__name__}, not an object with 'messages'.")
    if "messages" not in data and isinstance(data.get("conversations"), list):
        data = sharegpt_record(data, where)
    images = data.get("images")
    if isinstance(images, list) and any(isinstance(image, dict) for image in images):
        # ms-swift also writes an image as {"path": ...}
        data = {**data, "images": [image.get("path") if isinstance(image, dict) else image for image in images]}
    return data


def sharegpt_record(data: dict, where: str) -> dict:
    messages = []
    if isinstance(data.get("system"), str) and data["system"]:
        messages.append({"role": "system", "content": data["system"]})
    for number, turn in enumerate(data["conversations"], start=1):
        if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
            raise SampleFormatError(
                f"{where}, turn {number}: 'from' must be one of {', '.join(SHAREGPT_ROLES)} (ShareGPT form).")
        messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn.get("value", "")})
    record = {key: value for key, value in data.items() if key not in ("conversations", "system")}
    record["messages"] = messages
    return record


def looks_like_message(value) -> bool:
    return isinstance(value, dict) and "role" in value and "messages" not in value


def parse_dataset_text(text: str, base_dir: Path, name: str = "the dataset") -> Dataset:
    """Read a dataset from its text; the form is detected from the content."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise SampleFormatError(f"{name} is empty.")
    lines = text.splitlines()
    filled = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    try:
        data = loads(text, name)
    except JsonInputError as error:  # not one JSON value (or one too deep): JSONL when its lines are values
        if len(filled) > 1 and any(line_is_json_value(line) for _, line in filled[:5]):
            return jsonl_dataset(filled, base_dir, name)
        raise SampleFormatError(str(error)) from None
    if isinstance(data, list):
        if data and all(looks_like_message(item) for item in data):
            return Dataset(name, base_dir, "message list", [DatasetEntry(1, "the message list", {"messages": data})])
        entries = record_entries(data, "record")
        if not entries:
            raise SampleFormatError(f"{name} is an empty JSON list.")
        return Dataset(name, base_dir, "JSON list", entries)
    return Dataset(name, base_dir, "single record", [DatasetEntry(1, "the record", as_record(data, name))])


def line_is_json_value(line: str) -> bool:
    try:
        return isinstance(loads(line, "the line"), (dict, list))
    except JsonInputError:
        return False


def jsonl_dataset(lines: list[tuple[int, str]], base_dir: Path, name: str) -> Dataset:
    entries = []
    for position, (line_number, line) in enumerate(lines, start=1):
        where = f"line {line_number}"
        try:
            entries.append(DatasetEntry(position, where, as_record(loads(line, "the line"), where)))
        except InvalidJson as error:
            entries.append(DatasetEntry(position, where, None, f"not valid JSON: {error.msg} at column {error.colno}."))
        except (SampleFormatError, JsonInputError) as error:
            entries.append(DatasetEntry(position, where, None, str(error)))
    return Dataset(name, base_dir, "JSONL", entries)


def read_dataset(path: Path) -> Dataset:
    """A dataset file; images resolve relative to its folder. A link out of that folder is refused."""
    path = Path(path)
    try:
        text = read_text(path, "a .jsonl or .json dataset", inside=path.parent)
    except JsonInputError as error:
        raise SampleFormatError(str(error)) from None
    return parse_dataset_text(text, path.parent, path.name)


def records_dataset(records: Iterable[dict], base_dir: Path, name: str, form: str = "records") -> Dataset:
    """Records already in memory (demo trajectories, an annotation store), images relative to base_dir."""
    return Dataset(name, Path(base_dir), form, record_entries(records, "sample"))


def record_entries(records: Iterable, noun: str) -> list[DatasetEntry]:
    """One entry per record; a record that is not a usable object keeps its error instead of hiding the rest."""
    entries = []
    for number, record in enumerate(records, start=1):
        where = f"{noun} {number}"
        try:
            entries.append(DatasetEntry(number, where, as_record(record, where)))
        except SampleFormatError as error:
            entries.append(DatasetEntry(number, where, None, str(error)))
    return entries


def demo_dataset(demo, max_images: int = 1) -> Dataset:
    """The demo trajectories sliced into training samples, one per step, exactly as the trainer slices them."""
    from lora_core.data.slicing import SliceOptions, demo_sample_records

    records = demo_sample_records(demo, SliceOptions(max_images=max_images))
    return records_dataset(records, demo.root, "demo trajectories", "demo trajectories (sliced)")


NOT_DATASETS = ("dataset_info.json",)  # LLaMA-Factory's registry, shipped beside its datasets


def extract_dataset_zip(zip_path: Path, destination: Path, **limits) -> list[Path]:
    """Unpack a .zip holding a dataset and its images; returns the dataset files found, best guess first.

    The archive is checked by lora_core.data.archives before anything is written (size, member count,
    compression ratio, paths outside `destination`, links); `limits` are its max_bytes / max_members / max_ratio.
    """
    from lora_core.data.archives import ArchiveRefused, extract_archive

    destination = Path(destination).resolve()
    try:
        extract_archive(Path(zip_path), destination, **limits)
    except ArchiveRefused as error:
        raise SampleFormatError(str(error)) from None
    found = [
        path for path in destination.rglob("*")
        if path.suffix.lower() in (".jsonl", ".json") and path.is_file() and not path.is_symlink()
        and path.name not in NOT_DATASETS
        and not any(part.startswith((".", "__MACOSX")) for part in path.relative_to(destination).parts)
    ]
    found.sort(key=lambda p: (len(p.relative_to(destination).parts), p.suffix.lower() != ".jsonl", p.name))
    if not found:
        raise SampleFormatError(f"{Path(zip_path).name} holds no .jsonl or .json dataset.")
    return found
