"""`python -m authoring import|validate|export|reviews|agreement`: JSON summary on stdout; on refusal a one-line reason on
stderr and a non-zero exit (2 for a refusal, 1 when validation finds problems)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lora_core.cli_args import positive_int

from authoring.export import FORMATS, ExportOptions, export_store
from authoring.importer import IMPORT_FORMATS, ImportOptions, import_source
from authoring.store import Store
from authoring.validate import validate_store

COORDS = ("norm1000", "norm999", "abs-original", "abs-resized")
DEFAULT_STORE = Path(os.environ.get("LORA_WORKSPACE", "workspace")) / "authoring" / "annotations.sqlite"


class Refused(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise Refused(f"{message} (see --help)")




def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a ratio at least 0 and below 1, got {value}")
    return value


class TqdmProgress:
    """progress(done, total, what) drawn with tqdm on stderr."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total or self.bar.desc != what:
            self.close()
            self.bar = tqdm(total=total, desc=what, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def check_abs_resized(args) -> None:
    if args.coords == "abs-resized" and not args.max_dim:
        raise Refused("--coords abs-resized needs --max-dim D, the longest side the screenshots were resized to "
                      "(the model's own pixel budget applies after it)")


def model_encoder(args):
    """The chosen model's encoder, built only when coordinates need its resize (abs-resized)."""
    if args.coords != "abs-resized":
        return None
    from lora_core.qwen.checkpoint import resolve_model_path
    from lora_core.qwen.encoder import Encoder

    return Encoder.from_checkpoint(resolve_model_path(args.model, args.workspace))


def run_import(args) -> tuple[dict, int]:
    check_abs_resized(args)
    store = Store(args.store)
    progress = TqdmProgress()
    options = ImportOptions(args.format, args.coords, args.max_dim, encoder=model_encoder(args))
    try:
        summary = import_source(store, args.source, options, progress=progress)
    finally:
        progress.close()
    summary["store"] = str(store.path)
    return summary, 0


def run_validate(args) -> tuple[dict, int]:
    store = Store(args.store)
    progress = TqdmProgress()
    try:
        problems = validate_store(store, progress)
    finally:
        progress.close()
    summary = {"store": str(store.path), "trajectories": len(store.trajectories()), "steps": len(store.steps()),
               "corrections": len(store.corrections()), "ok": not problems, "problems": [p.to_json() for p in problems]}
    return summary, 0 if not problems else 1


def run_export(args) -> tuple[dict, int]:
    check_abs_resized(args)
    store = Store(args.store)
    options = ExportOptions(coords=args.coords, max_dim=args.max_dim, max_images=args.max_images,
                            val_ratio=args.val_ratio, seed=args.seed, encoder=model_encoder(args),
                            only_accepted=args.only_accepted)
    progress = TqdmProgress()
    try:
        summary = export_store(store, args.out, args.format, options, progress)
    finally:
        progress.close()
    summary["store"] = str(store.path)
    return summary, 0


def run_reviews(args) -> tuple[dict, int]:
    from authoring.review import members, reviews

    store = Store(args.store)
    return {"store": str(store.path), "team": [vars(m) for m in members(store)],
            "trajectories": [vars(r) for r in reviews(store)]}, 0


def run_agreement(args) -> tuple[dict, int]:
    from authoring.agreement import agreement_report

    store = Store(args.store)
    rows, summary = agreement_report(store, args.trajectory)
    steps = [{**vars(row), "types_agree": row.types_agree} for row in rows]
    return {"store": str(store.path), "summary": summary.to_json(), "steps": steps}, 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m authoring", description="Author, check and export GUI-agent trajectories.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def add_store(sub):
        sub.add_argument("--store", type=Path, default=DEFAULT_STORE,
                         help=f"the annotation store (default {DEFAULT_STORE}; $LORA_WORKSPACE moves it)")

    def add_model(sub):
        sub.add_argument("--model", help="abs-resized: the checkpoint whose image processor resized the screenshots "
                                         "(default: the embedded tiny Qwen3-VL)")
        sub.add_argument("--workspace", type=Path, default=DEFAULT_STORE.parent.parent,
                         help="where the embedded model lives")

    imp = commands.add_parser("import", help="import trajectories; all or nothing")
    imp.add_argument("source", type=Path, metavar="SRC", help="a folder or a JSON/JSONL file; images resolve inside its folder")
    imp.add_argument("--format", choices=IMPORT_FORMATS, default="auto")
    imp.add_argument("--coords", choices=COORDS, required=True, help="the convention the source's coordinates use")
    imp.add_argument("--max-dim", type=positive_int, help="abs-resized: the longest side the screenshots were resized to")
    add_store(imp)
    add_model(imp)
    imp.set_defaults(handler=run_import)

    val = commands.add_parser("validate", help="check every record; exit 1 when a check fails")
    add_store(val)
    val.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    val.set_defaults(handler=run_validate)

    exp = commands.add_parser("export", help="slice, split by trajectory and write images plus JSONL")
    exp.add_argument("--format", choices=FORMATS, required=True)
    exp.add_argument("--coords", choices=COORDS, default="norm1000", help="coordinate convention to write (default norm1000)")
    exp.add_argument("--max-dim", type=positive_int, help="pre-resize of the longest side (abs-resized needs it)")
    exp.add_argument("--max-images", type=positive_int, default=1, help="screenshots kept per sample (default 1)")
    exp.add_argument("--val-ratio", type=ratio, default=0.2,
                     help="share of trajectories for validation, split by trajectory (default 0.2, seed §8.3.2)")
    exp.add_argument("--seed", type=int, default=42, help="seed of the trajectory split (default 42)")
    exp.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    exp.add_argument("--only-accepted", action="store_true",
                     help="export only the trajectories a reviewer accepted")
    add_store(exp)
    add_model(exp)
    exp.set_defaults(handler=run_export)

    rev = commands.add_parser("reviews", help="the team and where each trajectory stands in review")
    add_store(rev)
    rev.set_defaults(handler=run_reviews)

    agree = commands.add_parser("agreement", help="click distance and action-type agreement of second-annotator copies")
    agree.add_argument("--trajectory", help="only the pairs of this trajectory (the original or a copy)")
    add_store(agree)
    agree.set_defaults(handler=run_agreement)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "store"):
            args.store.parent.mkdir(parents=True, exist_ok=True)
        summary, code = args.handler(args)
    except Refused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError, LookupError, RecursionError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {text}", file=sys.stderr)
        return 2
    json.dump(summary, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return code
