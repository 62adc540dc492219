"""Ship a run: merge its adapter into the base model (PEFT `merge_and_unload`) as a full checkpoint folder, or pack
the adapter as a zip.

The merged folder loads with transformers' Auto classes (AutoModelForImageTextToText, AutoProcessor) and
carries the base's processor, tokenizer and chat template in the standard Qwen3-VL form the embedded folder
uses (`processor_class` Qwen3VLProcessor, a video processor config). MERGED.json says where it came from and at
which image settings the run trained: max_dim is a pre-resize the processor does not know about.

`python -m lora_core merge --run RUN_ID [--checkpoint best|last|N] [--out DIR] [--dtype auto|bf16|fp32]
[--workspace DIR] --json`
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from lora_core.training.predict import PredictError, choose_adapter, parse_checkpoint, run_folder
from lora_core.training.run_folder import RunFolder

# the processor side of a checkpoint folder, copied from the base as it is
PROCESSOR_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json", "preprocessor_config.json",
                   "video_preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
                   "merges.txt", "special_tokens_map.json", "added_tokens.json")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
DTYPES = ("auto", "bf16", "fp32")
FOUR_BIT_REFUSAL = ("{what}; merging into 4-bit weights would round the LoRA update away and save a quantized "
                    "model. Merge into the bf16 base instead: --dtype bf16 (the Runs tab's \"merge into the bf16 "
                    "base\"), which loads the unquantized checkpoint{hint}.")


class MergeError(ValueError):
    """A merge or export that cannot be done; the message says why and what to do."""


def base_is_four_bit(model_path: Path) -> bool:
    from lora_core.qwen.checkpoint import read_json

    quantization = read_json(Path(model_path) / "config.json").get("quantization_config") or {}
    return bool(quantization.get("load_in_4bit")) or quantization.get("quant_method") in ("gptq", "awq") or \
        str(quantization.get("bnb_4bit_quant_type", "")).startswith(("nf4", "fp4"))


def merge_problem(config, model_path: Path, dtype: str) -> str | None:
    """A sentence when the merge would land on a 4-bit base."""
    if base_is_four_bit(model_path):
        return FOUR_BIT_REFUSAL.format(what=f"The base checkpoint {Path(model_path).name} is stored in 4 bits",
                                       hint=": point the run's model at the bf16 checkpoint folder")
    if config.training.use_4bit and dtype != "bf16":
        return FOUR_BIT_REFUSAL.format(what="This run trained on a 4-bit base (training.use_4bit)", hint="")
    return None


def torch_dtype(name: str, model_path: Path):
    import torch

    if name == "bf16":
        return torch.bfloat16
    if name == "fp32":
        return torch.float32
    from lora_core.qwen.checkpoint import read_json

    config = read_json(Path(model_path) / "config.json")
    stored = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(stored, torch.float32)


def copy_processor_files(base: Path, out: Path) -> list[str]:
    """The base's processor files, then the standard Qwen3-VL naming where one is missing."""
    from lora_core.qwen.checkpoint import write_standard_processor_files

    copied = []
    for name in PROCESSOR_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, out / name)
            copied.append(name)
    if "video_preprocessor_config.json" not in copied:
        write_standard_processor_files(out)
        copied.append("video_preprocessor_config.json")
    return copied


def merged_model(model_path: Path, adapter: Path, dtype):
    """Base + adapter, merged (PEFT merge_and_unload) into plain weights."""
    from peft import PeftModel

    from lora_core.qwen.checkpoint import load_model

    base = load_model(model_path, dtype=dtype)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()


def merge_run(workspace: Path, run: str, checkpoint: str = "best", out: Path | None = None,
              dtype: str = "auto") -> dict:
    """Merge the chosen adapter of a run into its base and save the folder; returns what was written."""
    from lora_core.qwen.checkpoint import resolve_model_path

    started = time.time()
    if dtype not in DTYPES:
        raise MergeError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    folder = run_folder(workspace, run)
    config = folder.load_config()
    status = folder.read_status()
    choice = parse_checkpoint(checkpoint)
    if choice == "base":
        raise MergeError("--checkpoint base has no adapter to merge; pick best, last or a step number.")
    adapter, label = choose_adapter(folder, choice)
    recorded = status.get("model")
    model_path = Path(recorded) if recorded and Path(recorded).is_dir() else resolve_model_path(config.model,
                                                                                                workspace)
    problem = merge_problem(config, model_path, dtype)
    if problem:
        raise MergeError(problem)
    out = Path(out) if out else folder.path / ("merged" if adapter == folder.adapter_path else f"merged-{adapter.name}")
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"{out.name} already exists and is not empty; pick another --out or delete it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model = merged_model(model_path, adapter, torch_dtype(dtype, model_path))
        model.save_pretrained(staging)
        copied = copy_processor_files(model_path, staging)
        provenance = {"run_id": folder.run_id, "run_name": status.get("name"), "adapter": label,
                      "base_model": "embedded" if (model_path / "EMBEDDED.json").exists() else str(config.model),
                      "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                      "image_settings": status.get("image_settings"),
                      "coordinate_space": config.data.coordinate_space,
                      "note": "Serve it at the image settings above (max_dim is a pre-resize before the processor: "
                              "seed §4.4).", "merged_at": time.time()}
        (staging / "MERGED.json").write_text(json.dumps(provenance, indent=1, ensure_ascii=False) + "\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"run_id": folder.run_id, "adapter": label, "out": str(out), "files": sorted(p.name for p in out.iterdir()),
            "processor_files": copied, "bytes": size, "dtype": provenance["dtype"],
            "image_settings": provenance["image_settings"], "seconds": round(time.time() - started, 2)}


def adapter_zip(folder: RunFolder, checkpoint: str = "last", dest_dir: Path | None = None) -> Path:
    """The chosen adapter (adapter_config.json, weights) with the run's config.yaml and image settings, zipped."""
    adapter, label = choose_adapter(folder, parse_checkpoint(checkpoint))
    if adapter is None:
        raise MergeError("The base model has no adapter to download; pick best, last or a step number.")
    dest_dir = Path(dest_dir) if dest_dir else Path(tempfile.mkdtemp(prefix="adapter-zip-"))
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{folder.run_id}-{adapter.name}.zip"
    status = folder.read_status()
    note = {"run_id": folder.run_id, "adapter": label, "image_settings": status.get("image_settings"),
            "note": "Load with peft.PeftModel.from_pretrained(base, folder); serve at these image settings."}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ADAPTER_FILES:
            if (adapter / name).is_file():
                archive.write(adapter / name, f"adapter/{name}")
        archive.write(folder.config_path, "config.yaml")
        archive.writestr("RUN.json", json.dumps(note, indent=1, ensure_ascii=False) + "\n")
    return target


def run_merge_command(args) -> dict:
    try:
        return merge_run(args.workspace, args.run, args.checkpoint, args.out, args.dtype)
    except PredictError as error:
        raise MergeError(str(error)) from None


def register(commands, add_image_options) -> None:
    from lora_core.cli_args import DEFAULT_WORKSPACE

    parser = commands.add_parser("merge", help="merge a run's adapter into its base model and save a full "
                                               "checkpoint folder (AutoModelForImageTextToText loads it)")
    parser.add_argument("--run", required=True, help="run id (a folder of WORKSPACE/runs)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last or a step number N")
    parser.add_argument("--out", type=Path, help="the folder to write (default: runs/<id>/merged)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weights of the merged model: auto (the base's), bf16 (needed for a 4-bit run), fp32")
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="default ./workspace")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.set_defaults(handler=run_merge_command)
