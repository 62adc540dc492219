"""Agreement between two annotators of one trajectory: the original and its blind copy (authoring.review).

Per step: do the action types agree, and how far apart are the two points, in abs-original pixels of
the step's screenshot (the first point of each action: coordinate, or a drag's start). Only the steps the
second annotator has saved done are compared: a blind copy starts with placeholder answers.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from authoring.review import copies_of, review, reviews


@dataclass(frozen=True)
class StepAgreement:
    original: str
    copy: str
    step: int  # 1-based
    first_annotator: str
    second_annotator: str
    first_kind: str
    second_kind: str
    distance: float | None  # None when either action has no point

    @property
    def types_agree(self) -> bool:
        return self.first_kind == self.second_kind


@dataclass(frozen=True)
class AgreementSummary:
    pairs: int
    steps: int
    points_compared: int
    mean_distance: float | None
    median_distance: float | None
    type_agreement: float | None  # share of steps whose action types agree
    waiting: int = 0  # copy steps not saved done yet, left out

    def to_json(self) -> dict:
        return {"pairs": self.pairs, "steps": self.steps, "waiting": self.waiting, "points_compared": self.points_compared,
                "mean_distance_px": self.mean_distance, "median_distance_px": self.median_distance,
                "type_agreement": self.type_agreement}


def first_point(action: dict) -> tuple[float, float] | None:
    for key in ("coordinate", "start_coordinate"):
        point = action.get(key)
        if isinstance(point, (list, tuple)) and len(point) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in point):
            return float(point[0]), float(point[1])
    return None


def pair_agreement(store, original_id: str, copy_id: str) -> tuple[list[StepAgreement], int]:
    """The compared steps of one pair, and how many copy steps still wait to be saved done."""
    first, second = review(store, original_id), review(store, copy_id)
    rows, waiting = [], 0
    for a, b in zip(store.steps(original_id), store.steps(copy_id)):
        if b.info.status not in ("done", "accepted"):
            waiting += 1
            continue
        pa, pb = first_point(a.action), first_point(b.action)
        distance = round(math.dist(pa, pb), 1) if pa is not None and pb is not None else None
        rows.append(StepAgreement(original_id, copy_id, a.number, first.assignee or a.info.annotator,
                                  second.assignee or b.info.annotator, a.action.get("action", ""),
                                  b.action.get("action", ""), distance))
    return rows, waiting


def summarize(rows: list[StepAgreement], pairs: int, waiting: int = 0) -> AgreementSummary:
    distances = [row.distance for row in rows if row.distance is not None]
    return AgreementSummary(
        pairs, len(rows), len(distances),
        round(statistics.fmean(distances), 1) if distances else None,
        round(statistics.median(distances), 1) if distances else None,
        round(sum(row.types_agree for row in rows) / len(rows), 3) if rows else None, waiting)


def agreement_report(store, trajectory_id: str | None = None) -> tuple[list[StepAgreement], AgreementSummary]:
    """Every pair (original, copy), or those of one trajectory (given the original or a copy)."""
    if trajectory_id is None:
        pairs = [(r.copy_of, r.trajectory_id) for r in reviews(store) if r.copy_of]
    else:
        shown = review(store, trajectory_id)
        original = shown.copy_of or trajectory_id
        pairs = [(original, r.trajectory_id) for r in copies_of(store, original)]
    rows, waiting = [], 0
    for original, copy in pairs:
        compared, left = pair_agreement(store, original, copy)
        rows += compared
        waiting += left
    return rows, summarize(rows, len(pairs), waiting)
