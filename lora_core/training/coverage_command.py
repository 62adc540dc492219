"""`python -m lora_core coverage --config RUN.yaml`: which modules each LoRA target entry of a run config reaches."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lora_core.analysis.coverage import CoverageError, coverage_for_config

def run_coverage_command(args) -> dict:
    from lora_core.qwen.checkpoint import resolve_model_path
    from lora_core.training.config import load_config

    loaded = load_config(args.config)
    config = loaded.config
    model_path = resolve_model_path(args.model or config.model, args.workspace)
    report = coverage_for_config(config, model_path)
    result = report.as_dict()
    result["config_notes"] = loaded.messages()
    if not report.ok:
        json.dump(result, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
        raise CoverageError(report.errors[0])
    return result


def register(commands, add_image_options) -> None:
    parser = commands.add_parser(
        "coverage", help="which modules each LoRA target entry matches, per-group trainable counts; "
                         "exits 2 when an entry matches nothing")
    parser.add_argument("--config", type=Path, required=True, help="RUN.yaml in the seed's schema")
    parser.add_argument("--model", help="checkpoint folder or hub id (default: the config's model, else embedded)")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"), help="where the embedded model lives")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.set_defaults(handler=run_coverage_command)
