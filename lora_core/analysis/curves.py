"""Reading loss curves the way the seed's §8.3.2 table does, plus its §4.4 resolution rule.

| pattern                    | meaning (seed)                       | what to do (seed)                   |
| still falling              | learning normally                    | keep training                       |
| plateau after a fast drop  | may be overfitting                   | check validation, stop early        |
(The seed names overfitting from the train curve alone; here a flattened train curve says "flattened; check
validation" unless the eval curve shows the turn (`overfitting_turn`), and a short flat curve says "not enough
signal".)
| noisy                      | learning rate too high / data uneven | lower LR, check data quality        |
| not falling                | learning rate too low / data problem | raise LR, check the data format     |
and §8.6.5: eval loss rising while train loss falls is overfitting; keep the checkpoint with the lowest eval loss.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

STILL_FALLING = "still falling"
PLATEAU = "flattened; check validation"
NOISY = "noisy"
NOT_FALLING = "not falling"
OVERFITTING = "overfitting"
TOO_SHORT = "not enough signal"

ADVICE = {
    STILL_FALLING: "Normal learning (§8.3.2): keep training; more steps or epochs should still help.",
    PLATEAU: "The train loss has flattened (§8.3.2 lists this pattern). A flat train curve alone is no evidence of "
             "overfitting: check the validation loss, and stop early only if it turns upwards.",
    NOISY: "Learning rate too high or inconsistent data (§8.3.2): lower the learning rate, raise "
           "gradient_accumulation_steps, check the data's quality.",
    NOT_FALLING: "Learning rate too low or a data problem (§8.3.2): raise the learning rate, check the data format "
                 "and that answer tokens are labelled (Mask Inspector).",
    OVERFITTING: "Eval loss rises while train loss falls (§8.6.5): the model memorises the training trajectories. "
                 "Keep the checkpoint at the turn (load_best_model_at_end), lower r, raise dropout or weight_decay, "
                 "add data (§8.6.8).",
    TOO_SHORT: "Too few logged points to tell a trend from noise: train longer or log more often "
               "(logging_steps) before reading the curve.",
}

MIN_POINTS = 5
MIN_FLAT_POINTS = 12  # a flat (or flattened) curve needs this many points to mean anything
NOT_FALLING_BELOW = 0.01  # less than 1 % total drop
NOISE_RATIO = 0.35  # wobble around the trend, relative to the total drop
STILL_FALLING_SHARE = 0.15  # the last third still holds this share of the total drop
FAST_DROP_SHARE = 0.6  # this share of the drop happened in the first third
OVERFIT_RISE = 0.01  # eval loss 1 % above its minimum


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    detail: str
    advice: str
    turn_step: int | None = None  # overfitting: the step where eval loss was lowest

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "detail": self.detail, "advice": self.advice, "turn_step": self.turn_step}


def moving_median(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [statistics.median(values[max(0, i - half): i + half + 1]) for i in range(len(values))]


def diagnose_train(points: list[tuple[int, float]]) -> Diagnosis:
    """The train-loss curve in one of the seed's four patterns."""
    points = [(s, v) for s, v in points if v == v]  # drop NaN
    if len(points) < MIN_POINTS:
        return Diagnosis(TOO_SHORT, f"{len(points)} logged point(s).", ADVICE[TOO_SHORT])
    values = [v for _, v in points]
    n = len(values)
    trend = moving_median(values, max(3, (n // 8) | 1))
    k = max(2, n // 6)
    head, tail = statistics.mean(trend[:k]), statistics.mean(trend[-k:])
    drop = head - tail
    scale = abs(head) or 1.0
    wobble = statistics.median(abs(v - t) for v, t in zip(values, trend))
    third = max(2, n // 3)
    early_drop = trend[0] - trend[third - 1]
    late_drop = trend[-third] - trend[-1]
    summary = f"loss {head:.4g} → {tail:.4g} over {points[-1][0]} steps ({-drop / scale:+.1%})"
    if drop / scale < NOT_FALLING_BELOW:
        return flat_or_short(Diagnosis(NOT_FALLING, summary, ADVICE[NOT_FALLING]), n)
    if wobble > NOISE_RATIO * drop:
        return Diagnosis(NOISY, f"{summary}; it wobbles ±{wobble:.3g} around its trend, "
                                f"{wobble / drop:.0%} of the whole drop", ADVICE[NOISY])
    if late_drop > STILL_FALLING_SHARE * drop:
        return Diagnosis(STILL_FALLING, f"{summary}; the last third still falls by {late_drop:.3g}",
                         ADVICE[STILL_FALLING])
    full_drop = max(trend[0] - trend[-1], drop)
    if early_drop >= FAST_DROP_SHARE * full_drop:
        return flat_or_short(Diagnosis(PLATEAU, f"{summary}; {min(early_drop / full_drop, 1):.0%} of the drop came "
                                                "in the first third, then it flattened", ADVICE[PLATEAU]), n)
    return flat_or_short(Diagnosis(PLATEAU, f"{summary}; it has flattened", ADVICE[PLATEAU]), n)


def flat_or_short(found: Diagnosis, points: int) -> Diagnosis:
    """A flat or flattened verdict stands only on enough points; below that it is "not enough signal"."""
    if points >= MIN_FLAT_POINTS:
        return found
    return Diagnosis(TOO_SHORT, f"{found.detail}; only {points} logged points, too few to call it "
                                f"{found.verdict.split(';')[0]} (at least {MIN_FLAT_POINTS})", ADVICE[TOO_SHORT])


def overfitting_turn(train: list[tuple[int, float]], evals: list[tuple[int, float]]) -> Diagnosis | None:
    """Eval loss rising after its minimum while train loss keeps falling: the step where it turned."""
    if len(evals) < 3:
        return None
    best_step, best = min(evals, key=lambda p: (p[1], p[0]))
    after = [v for s, v in evals if s > best_step]
    if not after or after[-1] < best * (1 + OVERFIT_RISE):
        return None
    train_at_turn = [v for s, v in train if s <= best_step][-3:]
    train_after = [v for s, v in train if s > best_step][-3:]
    if not train_at_turn or not train_after or statistics.mean(train_after) >= statistics.mean(train_at_turn):
        return None
    return Diagnosis(OVERFITTING, f"eval loss lowest at step {best_step} ({best:.4g}), {after[-1]:.4g} at the last "
                                  f"evaluation, while train loss went on falling "
                                  f"({statistics.mean(train_at_turn):.4g} → {statistics.mean(train_after):.4g})",
                     ADVICE[OVERFITTING], turn_step=best_step)


def curves_from_metrics(metrics: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train = [(int(m["step"]), float(m["loss"])) for m in metrics
             if m.get("kind") == "train" and isinstance(m.get("loss"), (int, float))]
    evals = [(int(m["step"]), float(m["eval_loss"])) for m in metrics if isinstance(m.get("eval_loss"), (int, float))]
    return train, dedupe_steps(evals)


def dedupe_steps(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    by_step = {}
    for step, value in points:
        by_step[step] = value
    return sorted(by_step.items())


def diagnose(metrics: list[dict]) -> list[Diagnosis]:
    """The train curve's pattern, and an overfitting turn when the eval curve shows one. A flattened train curve
    with a turn is overfitting; without one it stays "flattened; check validation", saying what eval showed."""
    train, evals = curves_from_metrics(metrics)
    found = diagnose_train(train)
    turn = overfitting_turn(train, evals)
    if found.verdict == PLATEAU:
        if turn is not None:
            return [Diagnosis(OVERFITTING, f"{found.detail}; {turn.detail}", turn.advice, turn.turn_step)]
        found = Diagnosis(PLATEAU, f"{found.detail}; {eval_note(evals)}", found.advice)
    return [found] + ([turn] if turn is not None else [])


def eval_note(evals: list[tuple[int, float]]) -> str:
    """What the eval curve says about a flattened train curve."""
    if len(evals) < 3:
        return f"{len(evals)} eval point(s): too few to check for a turn (evaluate more often: eval_steps)"
    best_step, best = min(evals, key=lambda p: (p[1], p[0]))
    return (f"eval loss shows no turn (lowest {best:.4g} at step {best_step}, {evals[-1][1]:.4g} at the last "
            "evaluation), so no sign of overfitting")


def run_progress(status: dict, metrics: list[dict] | None = None) -> dict:
    """Step, fraction done, ETA and throughput of a run, from the counts the trainer writes (status.json's
    tokens_seen / samples_seen / tokens_per_s) or, when absent, from metrics.jsonl's num_input_tokens_seen."""
    step, max_steps = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    fraction = min(step / max_steps, 1.0) if max_steps else None
    elapsed = status.get("elapsed_s")
    tokens = status.get("tokens_seen")
    tokens_per_s = status.get("tokens_per_s")
    train = [m for m in metrics or [] if m.get("kind") == "train" and isinstance(m.get("num_input_tokens_seen"),
                                                                                    (int, float))]
    if tokens is None and train:
        tokens = int(train[-1]["num_input_tokens_seen"])
    if tokens_per_s is None and len(train) >= 2:
        first, last = train[0], train[-1]
        seconds = float(last.get("time", 0)) - float(first.get("time", 0))
        if seconds > 0:
            tokens_per_s = (last["num_input_tokens_seen"] - first["num_input_tokens_seen"]) / seconds
    if tokens_per_s is None and tokens and elapsed:
        tokens_per_s = tokens / float(elapsed)
    samples = status.get("samples_seen")
    return {"step": step, "max_steps": max_steps, "fraction": fraction, "eta_s": status.get("eta_s"),
            "elapsed_s": elapsed, "tokens_seen": tokens, "samples_seen": samples,
            "tokens_per_s": float(tokens_per_s) if tokens_per_s else None,
            "samples_per_s": samples / float(elapsed) if samples and elapsed else None}


def resolution_flag(trained: dict | None, evaluated: dict | None) -> str | None:
    """A sentence when a run was evaluated at other image settings than it was trained at (seed §4.4)."""
    if not trained or not evaluated:
        return None
    keys = ("max_dim", "min_pixels", "max_pixels", "patch_size", "merge_size")
    differ = [k for k in keys if trained.get(k) != evaluated.get(k)]
    if not differ:
        return None
    changes = ", ".join(f"{k} {trained.get(k)} → {evaluated.get(k)}" for k in differ)
    return (f"Evaluated at other image settings than trained ({changes}). Seed §4.4: the model learned features at "
            "the training resolution; keep training and inference settings the same, or these numbers do not "
            "describe the model you will deploy.")
