"""The team workflow. The unit of work and review is a trajectory, with its steps and corrections.

A trajectory is open (unassigned, or assigned to one annotator), submitted for review, accepted, or
returned to its annotator with the reviewer's comment. Members join the team as annotators or reviewers;
reviewers also annotate, but never review their own work. A trajectory can be given to a second
annotator as a blind copy (same task and screenshots, no answers), linked to it for the agreement view.

Every refusal is a `ReviewRefused` (a ValueError) whose message is one sentence; nothing is changed then.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from authoring.model import Action
from authoring.validate import trajectory_problems

ROLES = ("annotator", "reviewer")
REVIEW_STATES = ("open", "submitted", "accepted", "returned")
# a member's queue, most urgent first
QUEUE_ORDER = {"returned": 0, "open": 1, "submitted": 2, "accepted": 3}
MAX_NAME = 80


class ReviewRefused(ValueError):
    """A team action that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Member:
    name: str
    role: str


@dataclass(frozen=True)
class Review:
    """Where one trajectory stands in the workflow."""

    trajectory_id: str
    task: str
    assignee: str = ""
    state: str = "open"
    reviewer: str = ""
    comment: str = ""
    copy_of: str | None = None
    updated_at: float = 0.0

    @property
    def unassigned(self) -> bool:
        return not self.assignee


REVIEW_QUERY = (
    "SELECT t.id AS trajectory_id, t.task, COALESCE(r.assignee, '') AS assignee, COALESCE(r.state, 'open') AS state, "
    "COALESCE(r.reviewer, '') AS reviewer, COALESCE(r.comment, '') AS comment, r.copy_of, "
    "COALESCE(r.updated_at, 0) AS updated_at FROM trajectories t LEFT JOIN reviews r ON r.trajectory_id = t.id")


def _review(row) -> Review:
    return Review(row["trajectory_id"], row["task"], row["assignee"], row["state"], row["reviewer"], row["comment"],
                  row["copy_of"], row["updated_at"])


# ---------------------------------------------------------------------------- the team


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ReviewRefused("Type your name first: every team action is recorded under it.")
    if len(name) > MAX_NAME:
        raise ReviewRefused(f"A name has at most {MAX_NAME} characters.")
    return name


def add_member(store, name: str, role: str = "annotator") -> Member:
    """Join the team (or change one's role)."""
    name = clean_name(name)
    if role not in ROLES:
        raise ReviewRefused(f"Unknown role {role!r}; use one of: {', '.join(ROLES)}.")
    with store.transaction() as db:
        db.execute("INSERT INTO team (name, role, added_at) VALUES (?, ?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET role = excluded.role", (name, role, time.time()))
        _log(db, "", name, "joined", role)
    return Member(name, role)


def members(store) -> list[Member]:
    rows = store.connection().execute("SELECT name, role FROM team ORDER BY name").fetchall()
    return [Member(row["name"], row["role"]) for row in rows]


def member(store, name: str) -> Member:
    """The known member `name`; an unknown name is refused with the team listed."""
    name = clean_name(name)
    row = store.connection().execute("SELECT name, role FROM team WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = ", ".join(m.name for m in members(store)) or "nobody yet"
        raise ReviewRefused(f"Unknown annotator {name!r}: join the team first (the team: {known}).")
    return Member(row["name"], row["role"])


# ---------------------------------------------------------------------------- reading


def review(store, trajectory_id: str) -> Review:
    row = store.connection().execute(REVIEW_QUERY + " WHERE t.id = ?", (trajectory_id,)).fetchone()
    if row is None:
        raise ReviewRefused(f"Trajectory {trajectory_id!r} is not in the store.")
    return _review(row)


def reviews(store) -> list[Review]:
    rows = store.connection().execute(REVIEW_QUERY + " ORDER BY t.ordinal, t.id").fetchall()
    return [_review(row) for row in rows]


def queue(store, annotator: str) -> list[Review]:
    """A member's own trajectories: returned ones (with the comment) first, then open, submitted, accepted."""
    name = member(store, annotator).name
    mine = [r for r in reviews(store) if r.assignee == name]
    return sorted(mine, key=lambda r: QUEUE_ORDER[r.state])


def review_queue(store, reviewer: str) -> list[Review]:
    """Trajectories waiting for review, other than the reviewer's own."""
    name = member(store, reviewer).name
    return [r for r in reviews(store) if r.state == "submitted" and r.assignee != name]


def accepted_ids(store) -> set[str]:
    rows = store.connection().execute("SELECT trajectory_id FROM reviews WHERE state = 'accepted'").fetchall()
    return {row[0] for row in rows}


def copy_ids(store) -> set[str]:
    rows = store.connection().execute("SELECT trajectory_id FROM reviews WHERE copy_of IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def copies_of(store, trajectory_id: str) -> list[Review]:
    return [r for r in reviews(store) if r.copy_of == trajectory_id]


def history(store, trajectory_id: str) -> list[dict]:
    rows = store.connection().execute("SELECT actor, event, detail, at FROM review_log WHERE trajectory_id = ? "
                                      "ORDER BY id", (trajectory_id,)).fetchall()
    return [dict(row) for row in rows]


def edit_refusal(store, trajectory_id: str, what: str = "edit") -> str | None:
    """Why a trajectory cannot be changed now (waiting for review or accepted), or None."""
    row = store.connection().execute("SELECT state FROM reviews WHERE trajectory_id = ?", (trajectory_id,)).fetchone()
    if row is None or row["state"] in ("open", "returned"):
        return None
    if row["state"] == "submitted":
        return f"Trajectory {trajectory_id} is waiting for review; your {what} was not saved (a reviewer can return it)."
    return f"Trajectory {trajectory_id} is accepted; your {what} was not saved (it is final)."


def step_states(store, trajectory_id: str) -> list[dict]:
    """One row per step, wrong action and recovery step: what it is and its status (draft, done, …)."""
    rows = []
    corrections = store.corrections(trajectory_id)
    for step in store.steps(trajectory_id):
        rows.append({"step": step.number, "part": "step", "correction": None, "status": step.info.status,
                     "action": Action.from_dict(step.action).describe()})
        for correction in (c for c in corrections if c.position == step.position):
            actions = [correction.wrong_action] + [r.action for r in correction.recovery]
            for (part, status), action in zip(correction.step_states(), actions):
                rows.append({"step": step.number, "part": part, "correction": correction.id, "status": status,
                             "action": Action.from_dict(action).describe()})
    return rows


# ---------------------------------------------------------------------------- changes


def _log(db, trajectory_id: str, actor: str, event: str, detail: str = "") -> None:
    db.execute("INSERT INTO review_log (trajectory_id, actor, event, detail, at) VALUES (?, ?, ?, ?, ?)",
               (trajectory_id, actor, event, detail, time.time()))


def _current(db, trajectory_id: str) -> Review:
    row = db.execute(REVIEW_QUERY + " WHERE t.id = ?", (trajectory_id,)).fetchone()
    if row is None:
        raise ReviewRefused(f"Trajectory {trajectory_id!r} is not in the store.")
    return _review(row)


def _write(db, trajectory_id: str, **values) -> None:
    names = list(values)
    db.execute(
        f"INSERT INTO reviews (trajectory_id, {', '.join(names)}, updated_at) VALUES (?, {', '.join('?' for _ in names)}, ?) "
        f"ON CONFLICT(trajectory_id) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in names)}, "
        "updated_at = excluded.updated_at", (trajectory_id, *values.values(), time.time()))


def assign(store, trajectory_id: str, annotator: str, by: str) -> Review:
    """Give an open or returned trajectory to a known annotator."""
    by, annotator = member(store, by).name, member(store, annotator).name
    with store.transaction() as db:
        current = _current(db, trajectory_id)
        if current.state in ("submitted", "accepted"):
            raise ReviewRefused(f"Trajectory {trajectory_id} is {current.state}; only open or returned trajectories "
                                "can be assigned.")
        if current.copy_of and _original_assignee(db, current.copy_of) == annotator:
            raise ReviewRefused(f"{annotator} annotates the original {current.copy_of}; give the copy to someone else.")
        _write(db, trajectory_id, assignee=annotator)
        _log(db, trajectory_id, by, "assigned", annotator)
    return review(store, trajectory_id)


def claim_next(store, annotator: str) -> Review | None:
    """Assign the first unassigned open trajectory to the annotator; None when none is left."""
    name = member(store, annotator).name
    with store.transaction() as db:
        row = db.execute(REVIEW_QUERY + " WHERE COALESCE(r.assignee, '') = '' AND COALESCE(r.state, 'open') = 'open' "
                         "ORDER BY t.ordinal, t.id LIMIT 1").fetchone()
        if row is None:
            return None
        _write(db, row["trajectory_id"], assignee=name)
        _log(db, row["trajectory_id"], name, "claimed", name)
    return review(store, row["trajectory_id"])


def _unfinished(store, trajectory_id: str) -> list[str]:
    parts = []
    for row in step_states(store, trajectory_id):
        if row["status"] in ("draft", "needs review"):
            where = f"step {row['step']}" if row["part"] == "step" else \
                f"step {row['step']} correction {row['correction']} {row['part']}"
            parts.append(where)
    return parts


def submit(store, trajectory_id: str, annotator: str) -> Review:
    """Send one's trajectory to review: every part saved done and every check passing."""
    name = member(store, annotator).name
    current = review(store, trajectory_id)
    if current.assignee and current.assignee != name:
        raise ReviewRefused(f"Trajectory {trajectory_id} is assigned to {current.assignee}; only they can submit it.")
    if current.state not in ("open", "returned"):
        raise ReviewRefused(f"Trajectory {trajectory_id} is already {current.state}.")
    unfinished = _unfinished(store, trajectory_id)
    if unfinished:
        shown = ", ".join(unfinished[:3]) + (f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else "")
        raise ReviewRefused(f"Not submitted: {shown} still draft; save each one done first.")
    trajectory = store.trajectory(trajectory_id)
    problems = trajectory_problems(store, trajectory, store.steps(trajectory_id), store.corrections(trajectory_id))
    if problems:
        raise ReviewRefused(f"Not submitted: {len(problems)} check(s) fail, first {problems[0]}")
    with store.transaction() as db:
        if _current(db, trajectory_id).state not in ("open", "returned"):
            raise ReviewRefused(f"Trajectory {trajectory_id} was submitted meanwhile.")
        _write(db, trajectory_id, assignee=name, state="submitted")
        _log(db, trajectory_id, name, "submitted")
    return review(store, trajectory_id)


def _decide(store, trajectory_id: str, reviewer: str, state: str, comment: str) -> Review:
    judge = member(store, reviewer)
    if judge.role != "reviewer":
        raise ReviewRefused(f"{judge.name} is an annotator; only a reviewer can accept or reject.")
    with store.transaction() as db:
        current = _current(db, trajectory_id)
        if current.state != "submitted":
            raise ReviewRefused(f"Trajectory {trajectory_id} is {current.state}, not submitted for review; "
                                "only submitted trajectories are reviewed.")
        if current.assignee == judge.name:
            raise ReviewRefused(f"{judge.name} annotated {trajectory_id}; another reviewer must review it.")
        _write(db, trajectory_id, state=state, reviewer=judge.name, comment=comment)
        _log(db, trajectory_id, judge.name, state, comment)
    return review(store, trajectory_id)


def accept(store, trajectory_id: str, reviewer: str, comment: str = "") -> Review:
    return _decide(store, trajectory_id, reviewer, "accepted", (comment or "").strip())


def reject(store, trajectory_id: str, reviewer: str, comment: str) -> Review:
    """Return the trajectory to its annotator with what to fix (a comment is required)."""
    comment = (comment or "").strip()
    if not comment:
        raise ReviewRefused("Say what to fix: a rejection goes back to the annotator with your comment.")
    return _decide(store, trajectory_id, reviewer, "returned", comment)


# ---------------------------------------------------------------------------- second annotator


def _original_assignee(db, trajectory_id: str) -> str:
    row = db.execute("SELECT assignee FROM reviews WHERE trajectory_id = ?", (trajectory_id,)).fetchone()
    return row["assignee"] if row else ""


def give_copy(store, trajectory_id: str, annotator: str, by: str) -> Review:
    """A blind copy of a trajectory (task and screenshots, no answers) for a second annotator, linked to it."""
    by, annotator = member(store, by).name, member(store, annotator).name
    original = store.trajectory(trajectory_id)
    steps = store.steps(trajectory_id)
    with store.transaction() as db:
        current = _current(db, trajectory_id)
        if current.copy_of:
            raise ReviewRefused(f"{trajectory_id} is itself a copy; give a copy of {current.copy_of} instead.")
        if current.assignee == annotator:
            raise ReviewRefused(f"{annotator} annotates {trajectory_id}; the second annotator must be someone else.")
        taken = db.execute("SELECT 1 FROM reviews WHERE copy_of = ? AND assignee = ?", (trajectory_id, annotator))
        if taken.fetchone():
            raise ReviewRefused(f"{annotator} already has a copy of {trajectory_id}.")
        rows = [{"image": step.image, "thinking": "", "action": Action().to_dict(), "target": None} for step in steps]
        suffix = re.sub(r"[^A-Za-z0-9_-]+", "_", annotator)
        copy_id = store.insert_trajectory(db, f"{trajectory_id}~{suffix}", original.task, original.app,
                                          f"copy:{trajectory_id}", rows, annotator)
        _write(db, copy_id, assignee=annotator, state="open", copy_of=trajectory_id)
        _log(db, copy_id, by, "copied", f"from {trajectory_id} for {annotator}")
    return review(store, copy_id)
