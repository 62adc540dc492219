"""The run form: the seed schema's fields as components, read back into a RunConfig, presets and YAML."""
from __future__ import annotations

import gradio as gr

from pathlib import Path

from lora_core.training.config import (
    FIELDS,
    REPORTERS,
    ConfigError,
    RunConfig,
    config_from_dict,
    dump_yaml,
    load_yaml_text,
    targets_from_text,
    targets_to_text,
)
from lora_core.training.presets import PRESETS, preset, uses_vision_lora, with_vision_lora
from lora_core.training.registry import RunError
from ui.runs.access import LaunchRefused, launch_checked, model_path_for, model_path_problem, view_only
from ui.runs.live import run_choices
from ui.runs.views import coverage_html, esc

DEMO_HIDDEN = ("model", "data.path", "training.gpus", "training.use_4bit")
DEFAULT_PRESET = "tiny-cpu"

def form_value(spec, value):
    if spec.kind == "targets":
        return targets_to_text(value)
    if spec.kind == "reporters":
        return list(value)
    if spec.kind == "str" and value is None:
        return ""
    if spec.kind == "switch":
        return value if value == "auto" else "true" if value else "false"
    return value


def form_values(config: RunConfig) -> list:
    return [form_value(spec, config.get(spec.path)) for spec in FIELDS]


def config_from_form(values: list, unknown: dict | None = None) -> RunConfig:
    """Raises ConfigError with the key's name when a value is unusable."""
    data: dict = {}
    for spec, value in zip(FIELDS, values):
        if spec.kind == "targets":
            value = targets_from_text(value)
        elif spec.kind == "str" and isinstance(value, str) and not value.strip():
            value = None
        elif spec.kind in ("int", "float") and spec.nullable and not value:
            value = None  # a number box cannot be empty: 0 means "not set"
        elif spec.kind == "int" and isinstance(value, float) and value == int(value):
            value = int(value)
        node = data
        keys = spec.path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    for path, value in (unknown or {}).items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config_from_dict(data).config


def make_component(spec, config: RunConfig, demo: bool):
    value = form_value(spec, config.get(spec.path))
    info = spec.help or ""
    if spec.kind in ("int", "float") and spec.nullable:
        info = (info + "; " if info else "") + "0 = not set"
    common = dict(label=spec.label, info=info or None, elem_id=f"cfg-{spec.path.replace('.', '-')}",
                  visible=not (demo and spec.path in DEMO_HIDDEN))
    if spec.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if spec.kind in ("int", "float"):
        # a nullable field shows "not set" as 0, which the box must accept (the schema checks the rest)
        minimum = 0 if spec.nullable and spec.minimum is not None and spec.minimum > 0 else spec.minimum
        return gr.Number(value=value, precision=0 if spec.kind == "int" else None, minimum=minimum,
                         maximum=spec.maximum, **common)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=value, **common)
    if spec.kind == "switch":
        return gr.Dropdown(["auto", "true", "false"], value=value, **common)
    if spec.kind == "reporters":
        return gr.Dropdown(list(REPORTERS), value=value, multiselect=True, **common)
    if spec.kind == "targets":
        return gr.Textbox(value=value, lines=7, max_lines=20, **common)
    return gr.Textbox(value=value, **common)



def preset_text(key: str) -> str:
    chosen = preset(key)
    return f"**{chosen.label}** — seed section: {chosen.section}." + (f" {chosen.note}" if chosen.note else "")




class FormView:
    """The launch bar (preset, name, coverage, launch) in view, and the config fields and YAML collapsed below it."""

    def __init__(self, ctx, locked: bool):
        initial = preset(DEFAULT_PRESET).config()
        initial.model = ctx.model_arg
        self.unknown_state = gr.State({})
        with gr.Row(elem_id="runs-launch-bar"):
            self.preset_choice = gr.Dropdown([(p.label, p.key) for p in PRESETS], value=DEFAULT_PRESET,
                                             label="Preset (from the seed's tables)", elem_id="runs-preset", scale=3)
            self.run_name = gr.Textbox(value="", label="Run name", placeholder="e.g. r16-llm-only",
                                       elem_id="runs-name", scale=2)
            self.coverage_button = gr.Button("Check LoRA coverage", elem_id="runs-coverage-button", scale=1)
            self.launch_button = gr.Button("Launch", variant="primary", elem_id="runs-launch", scale=1,
                                           interactive=not locked)
        self.preset_note = gr.Markdown(preset_text(DEFAULT_PRESET), elem_classes="runs-note")
        self.launch_message = gr.HTML(elem_id="runs-launch-message")
        self.coverage_view = gr.HTML(elem_id="runs-coverage")
        with gr.Accordion("Run config: every field of the seed's schema", open=False, elem_id="runs-config-section"):
            self.vision = gr.Checkbox(uses_vision_lora(initial), label="Vision LoRA (adds attn.qkv, attn.proj, "
                                      "mlp.linear_fc1, mlp.linear_fc2 of the vision blocks)", elem_id="runs-vision")
            self.data_path = gr.Textbox(label="Dataset: native sample JSONL on this machine (empty: demo "
                                        "trajectories)", elem_id="runs-data", visible=not (ctx.demo_mode or locked))
            self.components = []
            groups = list(dict.fromkeys(spec.group for spec in FIELDS))
            with gr.Row():
                for column in (groups[0::2], groups[1::2]):
                    with gr.Column(min_width=320):
                        for group in column:
                            with gr.Accordion(group, open=False):
                                for spec in [f for f in FIELDS if f.group == group]:
                                    self.components.append(make_component(spec, initial, ctx.demo_mode))
            self.components.sort(key=lambda c: [f"cfg-{f.path.replace('.', '-')}" for f in FIELDS].index(c.elem_id))
        with gr.Accordion("config.yaml (seed schema)", open=False, elem_id="runs-yaml-section"):
            self.yaml_box = gr.Code(dump_yaml(initial), language="yaml", label="config.yaml (seed schema)",
                                    interactive=True, elem_id="runs-yaml", max_lines=40)
            with gr.Row():
                self.apply_yaml = gr.Button("Load YAML into the form", size="sm", elem_id="runs-apply-yaml")
                self.yaml_file = gr.File(label="…or upload a YAML", file_types=[".yaml", ".yml"], type="filepath",
                                         height=90, visible=not ctx.demo_mode)
            self.config_messages = gr.HTML(elem_id="runs-config-messages")

    def wire(self, ctx, selected):
        # --- handlers: config

        def to_yaml(unknown, *values):
            try:
                return dump_yaml(config_from_form(list(values), unknown)), ""
            except ConfigError as error:
                return gr.skip(), f'<div class="coverage-error">{esc(error)}</div>'

        def apply_preset(key):
            chosen = preset(key)
            config = chosen.config()
            config.model = ctx.model_arg
            return (*form_values(config), dump_yaml(config), preset_text(key), uses_vision_lora(config), {}, "",
                    config.name or "")

        def load_yaml(text):
            try:
                loaded = load_yaml_text(text or "")
            except ConfigError as error:
                gr.Warning(str(error))
                return (*[gr.skip()] * len(self.components), gr.skip(), gr.skip(), f'<div class="coverage-error">{esc(error)}</div>')
            if ctx.demo_mode:
                loaded.config = ctx.runs.demo_limited(loaded.config)
            messages = "".join(f'<div data-field="config-message">{esc(m)}</div>' for m in loaded.messages())
            return (*form_values(loaded.config), uses_vision_lora(loaded.config), loaded.config.extra_settings(), messages)

        def load_yaml_file(path):
            if not path:
                return (*[gr.skip()] * (len(self.components) + 3), gr.skip())
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                gr.Warning("That file is not UTF-8 text; upload a .yaml config.")
                return (*[gr.skip()] * (len(self.components) + 3), gr.skip())
            return (*load_yaml(text), text)

        def toggle_vision(targets_text, enabled):
            try:
                config = RunConfig()
                config.lora.target_modules = targets_from_text(targets_text)
                return targets_to_text(with_vision_lora(config, enabled).lora.target_modules)
            except ConfigError as error:
                gr.Warning(str(error))
                return gr.skip()

        def check_coverage(unknown, *values):
            from lora_core.analysis.coverage import CoverageError, coverage_for_config

            try:
                config = config_from_form(list(values), unknown)
                if ctx.demo_mode:
                    config = ctx.runs.demo_limited(config)
                problem = model_path_problem(ctx, config.model, hub_ids=False) if view_only(ctx) else None
                if problem:
                    raise ValueError(problem)
                report = coverage_for_config(config, model_path_for(ctx, config))
            except (ConfigError, CoverageError, ValueError, RuntimeError) as error:
                gr.Warning(str(error))
                return f'<div class="coverage-error">{esc(error)}</div>'
            return coverage_html(report)

        def launch(unknown, name, data, *values, request: gr.Request = None):
            try:
                config = config_from_form(list(values), unknown)
                data_file = Path(data.strip()).expanduser() if data and data.strip() and not ctx.demo_mode else None
                run_id, report = launch_checked(ctx, config, name, data_file, request)
            except LaunchRefused as error:
                gr.Warning(str(error))
                return (f'<div class="run-failure">Not launched: {esc(error)}</div>',
                        coverage_html(error.report) if error.report else gr.skip(), gr.skip())
            except (ConfigError, RunError, ValueError, RuntimeError, OSError) as error:
                gr.Warning(str(error))
                return f'<div class="run-failure">Not launched: {esc(error)}</div>', gr.skip(), gr.skip()
            choices = run_choices(ctx)
            return (f'<div data-field="launched" data-run-id="{esc(run_id)}">Launched <code>{esc(run_id)}</code>. '
                    "Its curve appears below as it trains.</div>", coverage_html(report),
                    gr.update(choices=choices, value=run_id))

        form_inputs = [self.unknown_state, *self.components]
        for component in self.components:
            component.input(to_yaml, form_inputs, [self.yaml_box, self.config_messages])
        self.preset_choice.input(apply_preset, self.preset_choice,
                            [*self.components, self.yaml_box, self.preset_note, self.vision, self.unknown_state, self.config_messages, self.run_name])
        self.apply_yaml.click(load_yaml, self.yaml_box, [*self.components, self.vision, self.unknown_state, self.config_messages])
        self.yaml_file.upload(load_yaml_file, self.yaml_file, [*self.components, self.vision, self.unknown_state, self.config_messages, self.yaml_box])
        targets_box = self.components[[f.path for f in FIELDS].index("training.lora.target_modules")]
        self.vision.input(toggle_vision, [targets_box, self.vision], targets_box).then(to_yaml, form_inputs,
                                                                            [self.yaml_box, self.config_messages])
        self.coverage_button.click(check_coverage, form_inputs, self.coverage_view)
        self.launch_button.click(launch, [self.unknown_state, self.run_name, self.data_path, *self.components],
                            [self.launch_message, self.coverage_view, selected])

