"""The Runs tab's wiring without a browser: form <-> config, demo-mode gates, formatting."""
from types import SimpleNamespace

import pytest

import app
from lora_core.training.config import ConfigError
from lora_core.training.presets import PRESETS, preset
from ui.runs import (
    config_from_form,
    ctx_path_allowed,
    form_values,
    launch_refusal,
    log_html,
    runs_table,
    svg_plot,
)


@pytest.mark.parametrize("key", [p.key for p in PRESETS])
def test_form_round_trips_every_preset(key):
    config = preset(key).config()
    assert config_from_form(form_values(config)) == config


def test_form_zero_means_not_set_and_bad_values_name_their_key():
    config = preset("tiny-cpu").config()
    values = form_values(config)
    from lora_core.training.config import FIELDS

    paths = [f.path for f in FIELDS]
    values[paths.index("training.max_dim")] = 0
    values[paths.index("training.lora.vision_learning_rate")] = 0
    read = config_from_form(values)
    assert read.training.max_dim is None and read.lora.vision_learning_rate is None
    values[paths.index("training.lora.target_modules")] = "   "
    with pytest.raises(ConfigError, match="target_modules"):
        config_from_form(values)


def test_a_nullable_number_box_takes_its_not_set_zero_and_the_schema_still_checks_the_rest():
    """gradio refuses a Number below its minimum before any handler runs: a nullable field's 0 ("not set")
    must pass its box, and a real value below the field's minimum is still refused, by the schema."""
    from lora_core.training.config import FIELDS
    from ui.runs.form import make_component

    config = preset("tiny-cpu").config()
    nullable = [f for f in FIELDS if f.kind in ("int", "float") and f.nullable and (f.minimum or 0) > 0]
    assert "training.activation_memory_budget" in [f.path for f in nullable]
    for spec in nullable:
        assert make_component(spec, config, demo=False).preprocess(0) == 0, spec.path
    values = form_values(config)
    values[[f.path for f in FIELDS].index("training.activation_memory_budget")] = 0.01
    with pytest.raises(ConfigError, match="activation_memory_budget"):
        config_from_form(values)


def demo_ctx(exposed=True, demo=True, workspace=None, authenticated=False):
    return SimpleNamespace(demo_mode=demo, exposed=exposed, workspace=workspace, authenticated=authenticated,
                           view_only=exposed and not authenticated)


def test_exposed_demo_needs_a_login_to_launch():
    anonymous = SimpleNamespace(username=None)
    assert "needs a login" in launch_refusal(demo_ctx(), anonymous)
    assert launch_refusal(demo_ctx(authenticated=True), SimpleNamespace(username="alice")) is None
    assert launch_refusal(demo_ctx(exposed=False), anonymous) is None
    # exposed without --auth is view-only in every mode; with --auth or on loopback anyone logged in may launch
    assert "--auth" in launch_refusal(demo_ctx(demo=False), anonymous)
    assert launch_refusal(demo_ctx(demo=False, authenticated=True), SimpleNamespace(username="alice")) is None
    assert launch_refusal(demo_ctx(demo=False, exposed=False), anonymous) is None


def test_demo_flag_and_exposure(monkeypatch):
    monkeypatch.delenv("LORA_DEMO", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not app.parse_args([]).demo and app.parse_args(["--demo"]).demo
    monkeypatch.setenv("LORA_DEMO", "1")
    assert app.parse_args([]).demo
    assert not app.is_exposed(app.parse_args([]))
    assert app.is_exposed(app.parse_args(["--host", "0.0.0.0"])) and app.is_exposed(app.parse_args(["--share"]))
    monkeypatch.setenv("SPACE_ID", "someone/demo")
    assert app.is_exposed(app.parse_args([]))
    with pytest.raises(SystemExit, match="embedded tiny model"):
        app.main(["--demo", "--model", "/models/Qwen3-VL-2B"])


def test_demo_gallery_reads_only_workspace_files(tmp_path):
    inside = tmp_path / "demo" / "a.png"
    inside.parent.mkdir()
    inside.write_bytes(b"x")
    outside = tmp_path.parent / "elsewhere.png"
    outside.write_bytes(b"x")
    ctx = demo_ctx(workspace=tmp_path.resolve())
    assert ctx_path_allowed(ctx, str(inside)) and not ctx_path_allowed(ctx, str(outside))


def test_curve_svg_and_tables_escape_and_count():
    series = [{"label": "<b>run</b> train", "color": "#000", "points": [(1, 2.0), (2, 1.5), (3, 1.2)],
               "kind": "train", "run": "r1"},
              {"label": "run eval", "color": "#000", "points": [], "kind": "eval", "run": "r1"}]
    svg = svg_plot(series)
    assert 'data-series="train"' in svg and 'data-points="3"' in svg and "<b>run" not in svg
    assert "No loss logged yet" in svg_plot([])
    assert "No runs yet" in runs_table([])


def test_log_view_explains_the_seeds_warnings():
    text = log_html(["[train] step 1/2: loss 3.0",
                     "`use_cache=True` is incompatible with gradient checkpointing. Setting `use_cache=False`."])
    assert text.count('class="known"') == 1 and "seed §1" in text and "KV cache" in text
