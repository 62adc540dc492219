"""Long-lived state shared by the tabs: the workspace, the model and the demo data."""
from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

from lora_core.qwen.checkpoint import EMBEDDED_MODEL, ModelInfo, read_model_info, resolve_model_path


class AppContext:
    """Draws the demo and resolves the model in the background so the app serves its first page at once."""

    def __init__(self, workspace: Path, model: str | None = None, demo_mode: bool = False, exposed: bool = False,
                 authenticated: bool = False, resolve_now: bool = True):
        """resolve_now=False: the caller starts the demo's drawing and the model's resolution (`start_resolving`)
        once the server answers, so neither Pillow's drawing nor importing torch holds up the first page."""
        self.workspace = Path(workspace).resolve()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.model_arg = model or EMBEDDED_MODEL
        self.demo_mode = demo_mode  # public-Space demo: embedded model only, small step budget, no user paths
        self.exposed = exposed  # served beyond this machine (non-local host, --share, a Space)
        self.authenticated = authenticated  # started with --auth: every request comes from a logged-in user
        self._model_info: ModelInfo | None = None
        self._model_error: Exception | None = None
        self._model_ready = threading.Event()
        self.recipe_bar = None  # ui.recipe.RecipeBar, set when the page is built
        self._resolving = False
        self._demo_lock = threading.Lock()
        self._demo = None
        self._store_lock = threading.Lock()
        self._store = None
        if resolve_now:
            self.start_resolving()

    def start_resolving(self) -> None:
        """Draws the demo data and resolves the model in the background; events that need either wait for it."""
        if not self._resolving:
            self._resolving = True
            threading.Thread(target=self._prepare_demo, name="prepare-demo", daemon=True).start()
            threading.Thread(target=self._resolve_model, name="resolve-model", daemon=True).start()

    def _prepare_demo(self) -> None:
        try:
            self.demo
        except Exception:  # the event that needs the demo draws it again and reports the error
            pass

    @property
    def view_only(self) -> bool:
        """Exposed without --auth: the Runs tab launches, stops, kills and evaluates nothing, and no field reads a
        server path (model and data paths must lie inside the workspace; the gallery reads only the run folders)."""
        return self.exposed and not self.authenticated

    def _resolve_model(self) -> None:
        try:
            self._model_info = read_model_info(resolve_model_path(self.model_arg, self.workspace))
        except Exception as error:  # reported in the UI and by model_info()
            self._model_error = error
        finally:
            self._model_ready.set()

    def model_info(self, timeout: float = 120) -> ModelInfo:
        self.start_resolving()
        if not self._model_ready.wait(timeout):
            raise RuntimeError("The model is still being prepared; try again in a few seconds.")
        if self._model_error is not None:
            raise RuntimeError(f"The model {self.model_arg!r} could not be loaded: {self._model_error}")
        return self._model_info

    def encoder(self, timeout: float = 120):
        """The model's native encoder (tokenizer, template, special ids, image processor), built once."""
        from lora_core.qwen.encoder import Encoder

        return Encoder.from_checkpoint(self.model_info(timeout).path)

    def model_summary(self) -> str:
        try:
            info = self.model_info()
        except RuntimeError as error:
            return f"**Model:** {error}"
        return f"**Model:** {info.summary()}  \n`{info.path}`"

    @cached_property
    def runs(self):
        """The run registry and launcher (runs live in workspace/runs and outlive the app)."""
        from lora_core.training.registry import RunManager

        return RunManager(self.workspace, demo=self.demo_mode)

    @property
    def demo(self):
        """The demo data, drawn into the workspace on first use (once, whichever thread asks first; the others wait)."""
        with self._demo_lock:
            if self._demo is None:
                from demo import ensure_demo_data

                self._demo = ensure_demo_data(self.workspace)
            return self._demo

    @property
    def store(self):
        """The annotation store (workspace/authoring/annotations.sqlite), opened and seeded with the demo on first
        use (once, whichever thread asks first)."""
        with self._store_lock:
            if self._store is None:
                from authoring.demo import seed_demo
                from authoring.store import Store

                store = Store(self.workspace / "authoring" / "annotations.sqlite")
                seed_demo(store, self.demo)
                self._store = store
            return self._store

    @staticmethod
    def annotator_name(request=None, typed: str | None = None) -> str:
        """Who is editing: the login name when the app runs with --auth, else the name typed in the tab."""
        username = getattr(request, "username", None) if request is not None else None
        return (username or (typed or "").strip() or "annotator")[:80]
