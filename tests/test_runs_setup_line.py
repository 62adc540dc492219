"""The Runs tab says how the trainer laid a run out: what auto chose for memory and speed."""
from ui.runs.views import setup_line


def test_setup_line_names_what_auto_chose():
    status = {"precision": "bfloat16", "packing": True, "max_tokens_per_batch": 6144, "compiled_blocks": 52,
              "gradient_checkpointing": {"on": False, "setting": "auto", "activation_budget": 0.5,
                                         "reason": "a trial step <needs> 26.3 GiB"},
              "vision_cache": {"screenshots": 12, "gib": 0.082}, "compile_stats": {"eager_from_step": None}}
    line = setup_line(status)
    for part in ("bfloat16", "at most 6,144 tokens a pack", "gradient checkpointing off",
                 "compiled blocks keep 50% of their activations", "52 blocks compiled",
                 "vision cache 12 screenshots (84 MiB)"):
        assert part in line, part
    assert 'title="a trial step &lt;needs&gt; 26.3 GiB"' in line  # the reason, escaped, on hover


def test_setup_line_for_partial_checkpointing_an_eager_fallback_and_padding():
    status = {"packing": False, "compiled_blocks": 52, "compile_stats": {"eager_from_step": 1},
              "gradient_checkpointing": {"on": True, "layers": 5}}
    line = setup_line(status)
    assert "padded batches" in line and "gradient checkpointing on (first 5 layers)" in line
    assert "eager from step 1" in line and "keep" not in line
    assert "(2.50 GiB)" in setup_line({"vision_cache": {"screenshots": 300, "gib": 2.5}})


def test_no_setup_line_before_the_trainer_has_said_anything():
    assert setup_line({"state": "queued"}) == ""
