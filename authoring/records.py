"""What the store's edits share: record kinds and their editable fields, the JSON encoding, and the errors."""
from __future__ import annotations

import json
from dataclasses import dataclass

from authoring.model import valid_status

TABLES = {"trajectory": "trajectories", "step": "steps", "correction": "corrections"}
# fields an edit may change, per record kind; JSON-encoded ones are stored as text
EDITABLE = {
    "trajectory": ("task", "app", "status"),
    "step": ("thinking", "action", "target", "status"),
    "correction": ("wrong_thinking", "wrong_action", "recovery", "status"),
}
JSON_FIELDS = {"action", "target", "wrong_action", "recovery"}
CORRECTION_COLUMNS = ("id", "trajectory_id", "position", "wrong_thinking", "wrong_action", "recovery", "status",
                      "annotator", "seconds", "version", "updated_at", "session")
MAX_SECONDS_PER_EDIT = 300.0  # idle time beyond this is not counted as work


class StaleEdit(Exception):
    """Another annotator saved this record since it was loaded; `current` is their version."""

    def __init__(self, message: str, current):
        super().__init__(message)
        self.current = current


class RecordMissing(LookupError):
    pass


class TrajectoryLocked(ValueError):
    """The trajectory is waiting for review or accepted: it is not changed; the message says so."""


@dataclass(frozen=True)
class Editor:
    """Who edits: the annotator's name and their session (undo and redo are per session)."""

    annotator: str
    session: str


def dump_json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode_field(field_name: str, value):
    if field_name in JSON_FIELDS:
        return None if value is None else dump_json(value)
    if field_name == "status":
        return valid_status(value)
    return value


def decode_field(field_name: str, value):
    if field_name in JSON_FIELDS:
        return None if value is None else json.loads(value)
    return value


