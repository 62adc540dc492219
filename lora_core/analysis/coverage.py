"""LoRA coverage before launch: which modules each target entry reaches, and how many weights train.

PEFT matches a list entry by the full module name or a dotted suffix, and silently drops an entry that
matches nothing when another entry matches (the seed's `visual.attn.qkv` is such an entry). PEFT expands
the shorthand `all-linear` only as the whole string; a list holding just that entry (`["all-linear"]`, as the
form writes it) is read here, and handed to PEFT, as that string (`peft_targets`). Here every
entry is checked on its own with PEFT's own matcher, on a skeleton of the model built on the meta device
(no weights are read), and PEFT itself is then applied to that skeleton to count trainable parameters.
"""
from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

GROUPS = ("LLM attention", "LLM MLP", "vision attention", "vision MLP", "merger / deepstack mergers", "other")
VISION_GROUPS = ("vision attention", "vision MLP", "merger / deepstack mergers")
# Layer types PEFT's LoRA can wrap (by class name, so no torch import is needed to classify)
LORA_LAYER_TYPES = ("Linear", "Linear4bit", "Linear8bitLt", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D",
                    "MultiheadAttention")


ALL_LINEAR = "all-linear"  # PEFT's INCLUDE_LINEAR_LAYERS_SHORTHAND


class CoverageError(ValueError):
    """A target entry that reaches nothing (or nothing LoRA can wrap)."""


def is_all_linear(entry) -> bool:
    return isinstance(entry, str) and entry.strip().lower() == ALL_LINEAR


def peft_targets(targets):
    """target_modules in the form PEFT reads: a list holding only `all-linear` becomes the string "all-linear",
    which PEFT expands to every linear layer but the output layer (in a list it would look for a module of that
    name, find none and refuse the config). Anything else is returned as it is."""
    if isinstance(targets, (list, tuple)) and len(targets) == 1 and is_all_linear(targets[0]):
        return ALL_LINEAR
    if isinstance(targets, str) and is_all_linear(targets):
        return ALL_LINEAR
    return targets


def module_group(name: str) -> str:
    """Which part of a Qwen-VL model a module belongs to, from its name alone."""
    parts = name.split(".")
    if "visual" in parts:
        if "merger" in parts or "deepstack_merger_list" in parts:
            return "merger / deepstack mergers"
        if "blocks" in parts:
            if "attn" in parts:
                return "vision attention"
            if "mlp" in parts:
                return "vision MLP"
        return "other"
    if "layers" in parts:
        if "self_attn" in parts:
            return "LLM attention"
        if "mlp" in parts:
            return "LLM MLP"
    return "other"


@dataclass(frozen=True)
class ModuleEntry:
    name: str
    kind: str  # class name
    group: str
    linear: bool = False  # what PEFT's all-linear takes: a torch Linear or transformers Conv1D, not the output layer

    @property
    def wrappable(self) -> bool:
        return self.kind in LORA_LAYER_TYPES or self.linear


def meta_skeleton(config):
    """The model built from its transformers config on the meta device: names and shapes, no memory."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


@lru_cache(maxsize=4)
def cached_skeleton(config_path: str, mtime: float):
    from transformers import AutoConfig

    return meta_skeleton(AutoConfig.from_pretrained(str(Path(config_path).parent)))


def skeleton_for(model_path: Path):
    config_path = Path(model_path) / "config.json"
    if not config_path.exists():
        raise CoverageError(f"{model_path} has no config.json; point --model at a checkpoint folder.")
    return cached_skeleton(str(config_path.resolve()), config_path.stat().st_mtime)


def list_modules(model) -> list[ModuleEntry]:
    """Every named module, with PEFT's all-linear rule worked out (peft.tuners.tuners_utils.
    _maybe_include_all_linear_layers: isinstance Linear / Conv1D, minus the model's output embeddings)."""
    import torch

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        Conv1D = torch.nn.Linear
    from transformers import PreTrainedModel

    output = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None
    return [ModuleEntry(name, type(module).__name__, module_group(name),
                        isinstance(module, (torch.nn.Linear, Conv1D)) and module is not output)
            for name, module in model.named_modules() if name]


def lora_config(targets, r: int = 16, alpha: float = 32, dropout: float = 0.0):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)


def entry_matches(entry: str, names: list[str]) -> list[str]:
    """Module names one target entry reaches, by PEFT's own rule (full name, dotted suffix, or regex)."""
    from peft.tuners.tuners_utils import check_target_module_exists

    single = lora_config([entry])
    return [name for name in names if check_target_module_exists(single, name)]


def regex_matches(pattern: str, names: list[str]) -> list[str]:
    from peft.tuners.tuners_utils import check_target_module_exists

    config = lora_config(pattern)
    return [name for name in names if check_target_module_exists(config, name)]


def candidate_entries(modules: list[ModuleEntry]) -> dict[str, list[ModuleEntry]]:
    """Suffix entries that exist in this model (without layer numbers), with the modules each reaches."""
    candidates: dict[str, list[ModuleEntry]] = {}
    for module in modules:
        if not module.wrappable:
            continue
        parts = module.name.split(".")
        for length in range(1, min(3, len(parts)) + 1):
            suffix = parts[-length:]
            if any(part.isdigit() for part in suffix):
                break
            candidates.setdefault(".".join(suffix), []).append(module)
    return candidates


def suggest(entry: str, modules: list[ModuleEntry], limit: int = 3) -> list[str]:
    """Entries that do exist and are close to `entry`, each with what it would reach."""
    candidates = candidate_entries(modules)
    last = entry.split(".")[-1].lower()
    wants_vision = any(word in entry.lower() for word in ("visual", "vision", "vit"))

    def score(candidate: str) -> float:
        reached = candidates[candidate]
        value = difflib.SequenceMatcher(None, entry.lower(), candidate.lower()).ratio()
        candidate_last = candidate.split(".")[-1].lower()
        if last and (last in candidate_last or candidate_last in last):
            value += 0.5
        if wants_vision == (reached[0].group in VISION_GROUPS):
            value += 0.3
        if all(m.group == reached[0].group for m in reached):
            value += 0.1  # one group: a precise entry
        middle = [p for p in entry.lower().split(".")[:-1] if p not in ("visual", "vision", "model")]
        if middle:
            value += 0.2 * sum(p in candidate.lower().split(".") for p in middle) / len(middle)
        return value

    ranked = sorted(candidates, key=lambda c: (-score(c), len(c)))
    lines = []
    for candidate in ranked[:limit]:
        reached = candidates[candidate]
        groups = sorted({m.group for m in reached}, key=GROUPS.index)
        lines.append(f"{candidate} ({len(reached)} module{'s' if len(reached) != 1 else ''}: {', '.join(groups)})")
    return lines


@dataclass
class EntryCoverage:
    entry: str
    modules: list[str]
    groups: dict[str, int]
    unwrappable: list[str] = field(default_factory=list)  # matched but not a layer LoRA can wrap
    suggestions: list[str] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.modules)

    def as_dict(self) -> dict:
        return {"entry": self.entry, "matches": len(self.modules), "groups": self.groups,
                "modules": self.modules, "unwrappable": self.unwrappable, "suggestions": self.suggestions}


@dataclass
class CoverageReport:
    model: str
    targets: list[str] | str
    r: int
    entries: list[EntryCoverage]
    groups: dict[str, dict]  # group -> {"modules": n, "trainable": params}
    trainable: int
    total: int
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"model": self.model, "targets": self.targets, "r": self.r, "ok": self.ok, "errors": self.errors,
                "entries": [e.as_dict() for e in self.entries], "groups": self.groups,
                "trainable_parameters": self.trainable, "total_parameters": self.total,
                "trainable_percent": 100 * self.trainable / self.total if self.total else 0.0}


def check_entries(targets, modules: list[ModuleEntry]) -> tuple[list[EntryCoverage], list[str]]:
    """Each entry's matches (PEFT's rule), and an error sentence for each that reaches nothing usable."""
    names = [m.name for m in modules]
    by_name = {m.name: m for m in modules}
    entries, errors = [], []
    targets = peft_targets(targets)
    for entry in ([targets] if isinstance(targets, str) else targets):
        if is_all_linear(entry) and not isinstance(targets, str):  # beside other entries: PEFT reads it literally
            entries.append(EntryCoverage(entry, [], {}))
            errors.append(f"{entry!r} is PEFT's shorthand for every linear layer only as the whole of target_modules; "
                          "in a list beside other entries PEFT looks for a module of that name and finds none. "
                          "Write `target_modules: all-linear` alone, or list the layers.")
            continue
        if is_all_linear(entry):
            matched = [m.name for m in modules if m.linear]
        elif isinstance(targets, str):
            matched = regex_matches(entry, names)
        else:
            matched = entry_matches(entry, names)
        usable = [n for n in matched if by_name[n].wrappable]
        unusable = [n for n in matched if not by_name[n].wrappable]
        groups = {g: sum(1 for n in usable if by_name[n].group == g) for g in GROUPS}
        coverage = EntryCoverage(entry, usable, {g: c for g, c in groups.items() if c}, unusable[:5])
        kind = "regex" if isinstance(targets, str) else "entry"
        if unusable:
            coverage.suggestions = suggest(entry, modules)
            errors.append(f"The {kind} {entry!r} matches {unusable[0]} ({by_name[unusable[0]].kind}), which is not "
                          f"a layer LoRA can wrap (PEFT refuses the whole config); name its linear layers "
                          f"instead, e.g. {coverage.suggestions[0].split(' ')[0] if coverage.suggestions else 'q_proj'}.")
        elif not usable:
            coverage.suggestions = suggest(entry, modules)
            errors.append(f"The {kind} {entry!r} matches no module of this model (PEFT would drop it silently). "
                          f"Names that exist: {'; '.join(coverage.suggestions)}.")
        entries.append(coverage)
    return entries, errors


def trainable_by_group(peft_model) -> tuple[dict[str, dict], int, int]:
    """LoRA modules and trainable parameters per group, from a model PEFT has wrapped."""
    groups = {g: {"modules": 0, "trainable": 0} for g in GROUPS}
    trainable = total = 0
    for name, parameter in peft_model.named_parameters():
        count = parameter.numel()
        if getattr(parameter, "quant_storage", None) is not None or type(parameter).__name__ == "Params4bit":
            count *= 2  # bitsandbytes packs two 4-bit weights per byte
        total += count
        if not parameter.requires_grad:
            continue
        trainable += count
        module_name = clean_peft_name(name)
        groups[module_group(module_name)]["trainable"] += count
        if ".lora_A." in name:
            groups[module_group(module_name)]["modules"] += 1
    return groups, trainable, total


def clean_peft_name(name: str) -> str:
    """base_model.model.model.visual...qkv.lora_A.default.weight -> model.visual...qkv"""
    name = re.sub(r"^base_model\.model\.", "", name)
    return re.sub(r"\.lora_(A|B|embedding_A|embedding_B|magnitude_vector)\..*$", "", name)


def attached_modules(peft_model) -> list[str]:
    """Names of the modules that really carry a LoRA adapter."""
    return sorted({clean_peft_name(n) for n, _ in peft_model.named_parameters() if ".lora_A." in n})


def coverage_of(skeleton, targets, r: int, alpha: float, model_label: str) -> CoverageReport:
    """Check every entry, then let PEFT wrap a copy of the skeleton and count what trains."""
    import copy

    from peft import get_peft_model

    targets = peft_targets(targets)
    modules = list_modules(skeleton)
    entries, errors = check_entries(targets, modules)
    groups = {g: {"modules": 0, "trainable": 0} for g in GROUPS}
    trainable = 0
    total = sum(p.numel() for p in skeleton.parameters())
    # PEFT wraps what the clean entries reach (a silently dropped entry adds nothing; a container stops PEFT)
    clean = [e.entry for e in entries if e.matched and not e.unwrappable]
    if clean and not (isinstance(targets, str) and errors):
        wrapped = get_peft_model(copy.deepcopy(skeleton), lora_config(targets if isinstance(targets, str) else clean,
                                                                      r, alpha), low_cpu_mem_usage=True)
        groups, trainable, total = trainable_by_group(wrapped)
    return CoverageReport(model_label, targets, r, entries, groups, trainable, total, errors)


def coverage_for_model(model_path: Path, targets, r: int = 16, alpha: float = 32) -> CoverageReport:
    return coverage_of(skeleton_for(model_path), targets, r, alpha, str(model_path))


def coverage_for_config(config, model_path: Path) -> CoverageReport:
    """Coverage of a RunConfig's LoRA section on a checkpoint."""
    return coverage_for_model(model_path, config.lora.target_modules, config.lora.r, config.lora.alpha)


# Qwen3-VL-2B's real sizes (FACTS "Real sizes"), for counts and the GPU benchmark; no weights needed.
def qwen3vl_2b_config(tokenizer=None):
    """The config, with its image and vision ids read from `tokenizer` (default: the real Qwen tokenizer files)."""
    from transformers import Qwen3VLConfig

    from lora_core.qwen.special_tokens import read_special_tokens

    if tokenizer is None:
        from lora_core.qwen.checkpoint import load_tokenizer, qwen_tokenizer_files

        tokenizer = load_tokenizer(str(qwen_tokenizer_files()))
    special = read_special_tokens(tokenizer)
    return Qwen3VLConfig(
        text_config=dict(
            hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
            num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=262144,
            rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                             "mrope_interleaved": True},
        ),
        vision_config=dict(
            depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2048, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[5, 11, 17],
            num_position_embeddings=2304,
        ),
        image_token_id=special.image_pad, video_token_id=special.video_pad,
        vision_start_token_id=special.vision_start, vision_end_token_id=special.vision_end,
        tie_word_embeddings=True,
    )
