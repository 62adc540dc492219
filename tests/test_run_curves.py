"""Curve diagnosis by the seed's §8.3.2 table, the overfitting turn, and the §4.4 resolution flag."""
import math
import random

import pytest

from lora_core.analysis.curves import (
    NOISY,
    NOT_FALLING,
    OVERFITTING,
    PLATEAU,
    STILL_FALLING,
    TOO_SHORT,
    diagnose,
    diagnose_train,
    overfitting_turn,
    resolution_flag,
)

STEPS = range(1, 61)


def noisy(values, sigma, seed=0):
    rng = random.Random(seed)
    return [(s, v + rng.gauss(0, sigma)) for s, v in values]


@pytest.mark.parametrize("curve, verdict", [
    (noisy([(s, 2.0 - 0.025 * s) for s in STEPS], 0.005), STILL_FALLING),
    (noisy([(s, 0.5 + 1.5 * math.exp(-s / 5)) for s in STEPS], 0.005), PLATEAU),
    (noisy([(s, 2.0 - 0.005 * s) for s in STEPS], 0.3), NOISY),
    (noisy([(s, 2.0) for s in STEPS], 0.003), NOT_FALLING),
    (noisy([(s, 2.0 + 0.01 * s) for s in STEPS], 0.003), NOT_FALLING),
    ([(1, 2.0), (2, 1.5)], TOO_SHORT),
])
def test_the_seeds_four_patterns(curve, verdict):
    diagnosis = diagnose_train(curve)
    assert diagnosis.verdict == verdict, diagnosis
    assert "§8.3.2" in diagnosis.advice or verdict == TOO_SHORT


def test_overfitting_names_the_step_where_eval_turned():
    train = [(s, 2.0 - 0.02 * s) for s in STEPS]
    evals = [(s, 1.5 - 0.02 * s if s <= 30 else 0.9 + 0.01 * (s - 30)) for s in range(10, 61, 10)]
    turn = overfitting_turn(train, evals)
    assert turn.verdict == OVERFITTING and turn.turn_step == 30 and "step 30" in turn.detail
    assert overfitting_turn(train, [(s, 1.5 - 0.02 * s) for s in range(10, 61, 10)]) is None
    metrics = [{"kind": "train", "step": s, "loss": v} for s, v in train] + \
              [{"kind": "eval", "step": s, "eval_loss": v} for s, v in evals]
    assert [d.verdict for d in diagnose(metrics)] == [STILL_FALLING, OVERFITTING]


def test_eval_rising_while_train_also_rises_is_not_called_overfitting():
    train = [(s, 1.0 + 0.01 * s) for s in STEPS]
    evals = [(10, 1.0), (20, 0.9), (30, 1.2)]
    assert overfitting_turn(train, evals) is None


def test_resolution_flag():
    trained = {"max_dim": 520, "min_pixels": 65536, "max_pixels": 16777216, "patch_size": 16, "merge_size": 2}
    assert resolution_flag(trained, dict(trained)) is None
    assert resolution_flag(trained, None) is None
    flag = resolution_flag(trained, {**trained, "max_dim": 1024})
    assert "max_dim 520 → 1024" in flag and "§4.4" in flag
