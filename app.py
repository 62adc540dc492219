"""Qwen3-VL LoRA workbench: see what your image settings, masks and LoRA runs really do.

`python app.py --help` lists the options. Heavy libraries (transformers' model classes, peft) are
imported by the tabs when first used, so the first page is served within seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

APP_TITLE = "Qwen3-VL LoRA workbench"

CSS = """
.lab-table { border-collapse: collapse; font-size: 0.9em; margin: 0.4em 0; }
.lab-table th, .lab-table td { border: 1px solid var(--border-color-primary); padding: 3px 7px; text-align: right; }
.lab-table td:first-child, .lab-table th:first-child { text-align: left; }
.verdict-lost, .verdict-unreadable { color: #d11; font-weight: bold; }
.verdict-blurry { color: #c80; font-weight: bold; }
.verdict-ok, .verdict-clear { color: #080; font-weight: bold; }
.lab-notes { font-size: 0.85em; opacity: 0.85; }
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default 7860)")
    parser.add_argument("--workspace", type=Path, default=Path(os.environ.get("LORA_WORKSPACE", "workspace")),
                        help="folder for the embedded model, demo data, annotations and runs (default ./workspace)")
    parser.add_argument("--model", default=os.environ.get("LORA_MODEL", "embedded"),
                        help="checkpoint folder or hub id (default: the embedded tiny Qwen3-VL, built offline)")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="require a login; repeat for several users")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--demo", action="store_true", default=env_flag("LORA_DEMO"),
                        help="public demo mode (also LORA_DEMO=1): embedded model only, short runs, no file paths "
                             "from users, training launch only for logged-in users when exposed")
    return parser.parse_args(argv)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def is_exposed(args) -> bool:
    """Served beyond this machine: a non-local address, a share link, or a Hugging Face Space."""
    return bool(args.share or os.environ.get("SPACE_ID") or args.host not in ("127.0.0.1", "localhost", "::1"))


def exposure_line(exposed: bool, auth) -> str | None:
    """The start-up line saying what an exposed app without a login refuses, and the flag that lifts it."""
    if not exposed or auth:
        return None
    return ("This app is served beyond this machine without --auth, so the Runs tab is view-only (no launch, stop, "
            "kill or evaluate) and no field accepts a path on this server. Start it with --auth USER:PASSWORD to "
            "lift this.")


def parse_auth(pairs: list[str] | None) -> list[tuple[str, str]] | None:
    if not pairs:
        return None
    parsed = []
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"--auth expects USER:PASSWORD, got {pair!r}")
        parsed.append((user, password))
    return parsed


# (tab title, tab id, module in ui/): each module has build(ctx, blocks) and may define CSS and JS.
TABS = [
    ("Resolution Lab", "lab", "ui.lab"),
    ("Authoring", "authoring", "ui.authoring"),
    ("Mask Inspector", "inspector", "ui.inspector"),
    ("Runs", "runs", "ui.runs"),
]


def tab_modules():
    import importlib

    return [(title, tab_id, importlib.import_module(name)) for title, tab_id, name in TABS]


def build_app(ctx):
    """The page. It reads no demo data and loads no model: the tabs' load events fill in once those are ready."""
    import gradio as gr

    with gr.Blocks(title=APP_TITLE) as blocks:
        gr.Markdown(f"# {APP_TITLE}")
        model_line = gr.Markdown("**Model:** preparing…", elem_id="model-summary")
        from ui import recipe

        ctx.recipe_bar = recipe.build(ctx, blocks)  # shared by the tabs that show trainer numbers
        with gr.Tabs():
            for title, tab_id, module in tab_modules():
                with gr.Tab(title, id=tab_id):
                    module.build(ctx, blocks)
        blocks.load(ctx.model_summary, None, model_line)
    return blocks


def page_css() -> str:
    return CSS + "".join(getattr(module, "CSS", "") for _, _, module in tab_modules())


def page_js() -> str | None:
    """Each tab's browser script (keyboard shortcuts), run once when the page loads."""
    scripts = [getattr(module, "JS", "") for _, _, module in tab_modules()]
    scripts = [script for script in scripts if script]
    if not scripts:
        return None
    return "() => {" + "".join(f"({script})();" for script in scripts) + "}"


class _NoStubWriting:
    """Import hook: gradio's ComponentMeta re-derives and compares the .pyi type stub of every component class at
    import (1.4 s of `import gradio`'s 3.3 s on 2 cores). The stubs only serve type checkers and ship with the
    package, so this makes that step a no-op as gradio.component_meta loads."""

    MODULE = "gradio.component_meta"

    def find_spec(self, name, path, target=None):
        if name != self.MODULE:
            return None
        from importlib.machinery import PathFinder

        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


def skip_gradio_stub_writing() -> None:
    """Call before gradio is imported; does nothing once it is."""
    if "gradio" not in sys.modules and not any(isinstance(f, _NoStubWriting) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoStubWriting())


@contextmanager
def server_app_made_at_launch():
    """gradio builds its FastAPI app (80 routes, 0.2 s here) when a Blocks opens, when it closes and on queue();
    launch() builds it once more and serves only that one. Inside this block the earlier builds are skipped."""
    from gradio.routes import App

    made = App.__dict__["create_app"]
    App.create_app = staticmethod(lambda *args, **kwargs: None)
    try:
        yield
    finally:
        App.create_app = made


def patient_localhost_check(seconds: float = 30) -> None:
    """gradio aborts the launch when one 3-second HEAD of its own page times out, which happens on a busy
    2-core machine; retry it for up to `seconds` before giving up."""
    import time

    from gradio import networking

    once = networking.url_ok

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + seconds
        while not once(url):
            if time.monotonic() > deadline:
                return False
        return True

    networking.url_ok = url_ok


def main(argv=None) -> None:
    skip_gradio_stub_writing()
    args = parse_args(argv)
    auth = parse_auth(args.auth)
    from ui.context import AppContext

    if args.demo and args.model not in (None, "", "embedded"):
        raise SystemExit("--demo serves only the embedded tiny model; leave out --model.")
    exposed = is_exposed(args)
    ctx = AppContext(args.workspace, args.model, demo_mode=args.demo, exposed=exposed, authenticated=bool(auth),
                     resolve_now=False)
    line = exposure_line(exposed, auth)
    if line:
        print(line, flush=True)
    with server_app_made_at_launch():
        blocks = build_app(ctx).queue(default_concurrency_limit=4)
    patient_localhost_check()
    blocks.launch(
        server_name=args.host,
        server_port=args.port,
        auth=auth,
        share=args.share,
        max_file_size="50mb",
        css=page_css(),
        js=page_js(),
        # gradio's run history re-reads and re-writes up to 100 runs' inputs and outputs in localStorage on
        # every event (Next: 425 → 162 ms late in bench/bench_browser.py on 2 cores), and keeps annotations in the browser
        run_history=False,
        prevent_thread_lock=True,
    )
    ctx.start_resolving()  # the demo is drawn, torch, transformers and the model load once the page is served
    blocks.block_thread()


if __name__ == "__main__":
    main()
