"""Who may do what on the Runs tab, and which server paths a request may name: the login gate, view-only mode
(exposed without --auth), model and data paths inside the workspace, and every check before a launch."""
from __future__ import annotations

import re
from pathlib import Path

from lora_core.training.config import RunConfig
from lora_core.training.registry import RunError

def ctx_path_allowed(ctx, path: str) -> bool:
    """Prediction rows name screenshots. View-only (exposed, no login): only files inside the run folders (and
    the app's own demo screenshots, workspace/demo); the demo: inside the workspace; else anywhere readable."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        return False
    if view_only(ctx):
        workspace = Path(ctx.workspace)
        return inside(resolved, workspace / "runs") or inside(resolved, workspace / "demo")
    if not ctx.demo_mode:
        return True
    return ctx.workspace in resolved.parents


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` (resolved: symlinks followed) lies inside `folder`."""
    folder = Path(folder).resolve()
    path = Path(path).resolve()
    return path == folder or folder in path.parents


def view_only(ctx) -> bool:
    """Served beyond this machine without --auth: Runs shows runs and acts on none (ui.context)."""
    return bool(getattr(ctx, "view_only", False))


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def model_path_problem(ctx, model, hub_ids: bool = True) -> str | None:
    """A sentence when `model` names a server path outside the workspace (the embedded model and the app's own
    --model are always fine; a hub id when `hub_ids`)."""
    text = str(model or "").strip()
    if text in ("", "embedded") or text == str(ctx.model_arg or ""):
        return None
    from lora_core.training.registry import ROOT

    given = Path(text).expanduser()
    places = [given] if given.is_absolute() else [Path.cwd() / given, ROOT / given]  # the app's, the trainer's
    if HUB_ID.fullmatch(text) and not any(place.exists() for place in places):
        if hub_ids:
            return None
        return (f"model {text!r} is a hub id; without a login this app loads only the embedded model or a "
                "checkpoint inside its workspace (start it with --auth USER:PASSWORD to allow more).")
    if all(inside(place, ctx.workspace) for place in places):
        return None
    return (f"model {text!r} is a path outside the app's workspace; a config sent to this app may name only a "
            "checkpoint folder inside the workspace (or embedded).")


def data_path_problem(ctx, data, relative_to: Path | None = None) -> str | None:
    """A sentence when a dataset path lies outside the workspace (relative: from `relative_to`, the run folder)."""
    text = str(data or "").strip()
    if not text:
        return None
    given = Path(text).expanduser()
    place = given if given.is_absolute() else Path(relative_to or Path.cwd()) / given
    if inside(place, ctx.workspace):
        return None
    return (f"data.path {text!r} is outside the app's workspace; a config sent to this app may name only a "
            "dataset inside the workspace (or none: the demo trajectories).")


def path_problems(ctx, config: RunConfig, data_file: Path | None, api: bool) -> list[str]:
    """Server paths a remote user may not name: over the API always, and everywhere when view-only."""
    if not (api or view_only(ctx)):
        return []
    run_folder = Path(ctx.workspace) / "runs" / "run"  # data.path is read relative to runs/<id>/
    problems = [model_path_problem(ctx, config.model, hub_ids=not view_only(ctx)),
                data_path_problem(ctx, config.data.path, run_folder),
                data_path_problem(ctx, data_file) if data_file is not None else None]
    return [problem for problem in problems if problem]


# ----------------------------------------------------------------- launching


VIEW_ONLY = ("This app is served beyond this machine without a login, so the Runs tab is view-only: it does not "
             "{what}. Start the app with --auth USER:PASSWORD to let logged-in users train.")


def launch_refusal(ctx, request: gr.Request | None, what: str = "launch runs") -> str | None:
    if ctx.demo_mode and ctx.exposed and not getattr(request, "username", None):
        return ("This public demo replays stored runs; launching training needs a login. Start the app with "
                "--auth USER:PASSWORD to let trusted users train.") if what == "launch runs" else \
            VIEW_ONLY.format(what=what)
    if view_only(ctx):
        return VIEW_ONLY.format(what=what)
    return None



class LaunchRefused(RunError):
    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def launch_checked(ctx, config: RunConfig, name: str | None, data_file: Path | None, request=None, api=False):
    """Every check before a launch (a login when exposed, server paths, CUDA, data, LoRA coverage), then the
    launch. `api`: the config came over the HTTP API, so its model and data paths must lie inside the workspace."""
    from lora_core.analysis.coverage import coverage_for_config

    refusal = launch_refusal(ctx, request)
    if refusal:
        raise LaunchRefused(refusal)
    if ctx.demo_mode:
        config, data_file = ctx.runs.demo_limited(config), None
    problems = path_problems(ctx, config, data_file, api)  # before anything reads those paths
    if problems:
        raise LaunchRefused(problems[0])
    problems = ctx.runs.preflight(config, data_file)
    if problems:
        raise LaunchRefused(problems[0])
    report = coverage_for_config(config, model_path_for(ctx, config))
    if not report.ok:
        raise LaunchRefused(report.errors[0], report)
    run_id = ctx.runs.start(config, name=(name or "").strip() or None, data_path=data_file)
    return run_id, report



def model_path_for(ctx, config: RunConfig):
    from lora_core.qwen.checkpoint import resolve_model_path

    if config.model in (None, "", "embedded"):
        return ctx.model_info().path if ctx.model_arg == "embedded" else resolve_model_path("embedded", ctx.workspace)
    return resolve_model_path(config.model, ctx.workspace)
