"""Device check for merge and export: merge a run's adapter into the embedded base, then load the merged folder the
standard way (AutoProcessor, with torchvision's video processor, and AutoModelForImageTextToText) and compare its
logits on a screenshot prompt with base + adapter. Prints one JSON line; exit 0 when it loads and agrees.

    python bench/check_merge_device.py                        # a random LoRA adapter on the embedded model (fast)
    python bench/check_merge_device.py --train                # a real 6-step run through the launcher first
    python bench/check_merge_device.py --workspace W --run ID # a run that exists
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_adapter_run(workspace: Path) -> str:
    """A finished run folder holding a random (non-zero) LoRA adapter on the embedded model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lora_core.qwen.checkpoint import ensure_embedded_checkpoint, load_model
    from lora_core.training.config import dump_yaml
    from lora_core.training.data import run_encoder
    from lora_core.training.presets import preset
    from lora_core.training.run_folder import RunFolder

    base = ensure_embedded_checkpoint(workspace)
    folder = RunFolder(workspace / "runs" / "device-check-random")
    folder.path.mkdir(parents=True, exist_ok=True)
    config = preset("tiny-cpu").config()
    folder.config_path.write_text(dump_yaml(config), encoding="utf-8")
    torch.manual_seed(0)
    model = get_peft_model(load_model(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                        init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(folder.adapter_path)
    folder.update_status(state="finished", name="device-check", image_settings=run_encoder(config, base).settings
                         .as_dict())
    return folder.run_id


def trained_run(workspace: Path) -> str:
    from lora_core.training.presets import preset
    from lora_core.training.registry import FINAL_STATES, RunManager

    config = preset("tiny-cpu").config()
    config.sft.max_steps, config.sft.eval_steps, config.sft.save_steps = 6, 3, 3
    config.evaluation.after_training = False
    manager = RunManager(workspace)
    run_id = manager.start(config, name="device-check")
    deadline = time.monotonic() + 400
    while manager.refresh(run_id).get("state") not in FINAL_STATES:
        if time.monotonic() > deadline:
            raise RuntimeError("the tiny run did not finish within 400 s")
        time.sleep(1)
    status = manager.refresh(run_id)
    if status.get("state") != "finished":
        raise RuntimeError(f"the tiny run ended {status.get('state')}: {status.get('message')}")
    return run_id


def check(workspace: Path, run_id: str, checkpoint: str) -> dict:
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from demo import ensure_demo_data
    from lora_core.qwen.checkpoint import resolve_model_path
    from lora_core.training.merge import merge_run
    from lora_core.training.predict import choose_adapter, run_folder

    merged = merge_run(workspace, run_id, checkpoint, workspace / "merged" / run_id)
    out = Path(merged["out"])
    processor = AutoProcessor.from_pretrained(str(out))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForImageTextToText.from_pretrained(str(out), dtype=torch.float32).to(device).eval()
    demo = ensure_demo_data(workspace)
    image = demo.screen(demo.trajectories[0].steps[0].screenshot).path
    messages = [{"role": "user", "content": [{"type": "image", "image": str(image)},
                                             {"type": "text", "text": "Open the Sales folder"}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt").to(device)
    folder = run_folder(workspace, run_id)
    adapter, _ = choose_adapter(folder, checkpoint)
    base = AutoModelForImageTextToText.from_pretrained(str(resolve_model_path("embedded", workspace)),
                                                       dtype=torch.float32)
    reference_model = PeftModel.from_pretrained(base, str(adapter)).to(device).eval()
    with torch.no_grad():
        logits = model(**inputs).logits
        reference = reference_model(**inputs).logits
    difference = float((logits - reference).abs().max())
    try:
        import torchvision

        torchvision_version = torchvision.__version__
    except ImportError:
        torchvision_version = None
    return {"ok": difference <= 1e-4, "transformers": transformers.__version__, "torchvision": torchvision_version,
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "run_id": run_id,
            "adapter": merged["adapter"], "processor_class": type(processor).__name__,
            "video_processor": type(getattr(processor, "video_processor", None)).__name__,
            "model_class": type(model).__name__, "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "max_abs_logit_difference": difference, "merged_files": merged["files"], "merged_bytes": merged["bytes"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="default: a fresh temporary folder")
    parser.add_argument("--run", help="an existing run id in WORKSPACE/runs")
    parser.add_argument("--checkpoint", default="last")
    parser.add_argument("--train", action="store_true", help="train a 6-step tiny run instead of a random adapter")
    args = parser.parse_args(argv)
    workspace = (args.workspace or Path(tempfile.mkdtemp(prefix="merge-check-"))).resolve()
    try:
        run_id = args.run or (trained_run(workspace) if args.train else random_adapter_run(workspace))
        result = check(workspace, run_id, args.checkpoint)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {' '.join(str(error).split())[:400]}"}))
        return 1
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
