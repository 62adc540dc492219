"""The diagnosis wording the issue asks for: a flattened train curve is "flattened; check validation" unless the
eval curve turns (then overfitting); a flat curve with too few points is "not enough signal"; and the progress
numbers come from the trainer's counts when it writes them."""
import math

from lora_core.analysis.curves import NOT_FALLING, OVERFITTING, PLATEAU, TOO_SHORT, diagnose, run_progress

STEPS = range(1, 61)


def metrics(train, evals=()):
    return [{"kind": "train", "step": s, "loss": v} for s, v in train] + \
           [{"kind": "eval", "step": s, "eval_loss": v} for s, v in evals]


def fast_drop_then_flat(steps=STEPS):
    return [(s, 0.5 + 1.5 * math.exp(-s / 5)) for s in steps]


def test_flattened_train_with_flat_eval_is_not_called_overfitting():
    found = diagnose(metrics(fast_drop_then_flat(), [(s, 1.1 + 0.0001 * (s % 3)) for s in range(10, 61, 10)]))
    assert [d.verdict for d in found] == [PLATEAU] and PLATEAU == "flattened; check validation"
    assert "no sign of overfitting" in found[0].detail
    assert "no evidence of overfitting" in found[0].advice and "Possibly overfitting" not in found[0].advice


def test_flattened_train_without_eval_says_there_is_nothing_to_check_yet():
    (found,) = diagnose(metrics(fast_drop_then_flat()))
    assert found.verdict == PLATEAU and "too few to check for a turn" in found.detail


def test_flattened_train_with_an_eval_turn_is_overfitting_at_the_turn():
    train = [(s, 0.5 + 1.5 * math.exp(-s / 5) - 0.0005 * s) for s in STEPS]  # flattened, still creeping down
    evals = [(10, 1.0), (20, 0.8), (30, 0.85), (40, 0.95), (50, 1.05), (60, 1.15)]
    (found,) = diagnose(metrics(train, evals))
    assert found.verdict == OVERFITTING and found.turn_step == 20 and "flattened" in found.detail


def test_flat_curves_with_too_few_points_have_not_enough_signal():
    (flat,) = diagnose(metrics([(s, 2.0 + 0.0001 * (s % 2)) for s in range(1, 9)]))
    assert flat.verdict == TOO_SHORT == "not enough signal" and "only 8 logged points" in flat.detail
    (short_plateau,) = diagnose(metrics(fast_drop_then_flat(range(1, 10))))
    assert short_plateau.verdict == TOO_SHORT
    (long_flat,) = diagnose(metrics([(s, 2.0 + 0.0001 * (s % 2)) for s in STEPS]))
    assert long_flat.verdict == NOT_FALLING
    (two,) = diagnose(metrics([(1, 2.0), (2, 1.9)]))
    assert two.verdict == TOO_SHORT


def test_progress_reads_the_trainers_counts_and_falls_back_to_metrics():
    written = run_progress({"step": 5, "max_steps": 20, "eta_s": 30, "elapsed_s": 10, "tokens_seen": 4000,
                            "samples_seen": 10, "tokens_per_s": 400.0})
    assert written["fraction"] == 0.25 and written["tokens_per_s"] == 400 and written["samples_per_s"] == 1.0
    logged = [{"kind": "train", "step": 1, "time": 2.0, "num_input_tokens_seen": 800},
              {"kind": "train", "step": 3, "time": 6.0, "num_input_tokens_seen": 2400}]
    fallback = run_progress({"step": 3, "max_steps": 6, "elapsed_s": 6}, logged)
    assert fallback["tokens_seen"] == 2400 and fallback["tokens_per_s"] == 400 and fallback["samples_seen"] is None
    nothing = run_progress({})
    assert nothing["fraction"] is None and nothing["tokens_per_s"] is None
