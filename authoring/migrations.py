"""The store's schema and its versions: `PRAGMA user_version` says which one a database holds.

Version 1 is the first schema (never written to user_version, so a store made then reads 0). Opening a
store brings it up to SCHEMA_VERSION in one transaction: all of a migration or none of it. A database
from a newer app is refused untouched.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from authoring.model import RECOVERY_STEP_STATUSES

SCHEMA_VERSION = 2

# version 1: the first store (authoring/store.py before schema versions)
BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY, width INTEGER NOT NULL, height INTEGER NOT NULL, elements TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS trajectories (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, app TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
    ordinal INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'draft', annotator TEXT NOT NULL DEFAULT '', seconds REAL NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1, updated_at REAL NOT NULL DEFAULT 0, session TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY, trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, image TEXT NOT NULL REFERENCES images(path), thinking TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL, target TEXT,
    status TEXT NOT NULL DEFAULT 'draft', annotator TEXT NOT NULL DEFAULT '', seconds REAL NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1, updated_at REAL NOT NULL DEFAULT 0, session TEXT NOT NULL DEFAULT '',
    UNIQUE (trajectory_id, position));
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY, trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, wrong_thinking TEXT NOT NULL DEFAULT '', wrong_action TEXT NOT NULL,
    recovery TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'draft', annotator TEXT NOT NULL DEFAULT '', seconds REAL NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1, updated_at REAL NOT NULL DEFAULT 0, session TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS edits (
    id INTEGER PRIMARY KEY, session TEXT NOT NULL, annotator TEXT NOT NULL, kind TEXT NOT NULL,
    record_id TEXT NOT NULL, before TEXT, after TEXT, version INTEGER, state TEXT NOT NULL DEFAULT 'done',
    at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS edits_by_session ON edits (session, state, id);
CREATE INDEX IF NOT EXISTS steps_by_trajectory ON steps (trajectory_id, position);
CREATE INDEX IF NOT EXISTS corrections_by_trajectory ON corrections (trajectory_id, position);
"""

# version 2: the team (members, one review row per trajectory, the review log), agreement copies,
# and a status per recovery step
TEAM_SCHEMA = """
CREATE TABLE team (
    name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('annotator', 'reviewer')), added_at REAL NOT NULL);
CREATE TABLE reviews (
    trajectory_id TEXT PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
    assignee TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'submitted', 'accepted', 'returned')),
    reviewer TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT '',
    copy_of TEXT REFERENCES trajectories(id) ON DELETE CASCADE, updated_at REAL NOT NULL DEFAULT 0);
CREATE TABLE review_log (
    id INTEGER PRIMARY KEY, trajectory_id TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', at REAL NOT NULL);
CREATE INDEX reviews_by_assignee ON reviews (assignee, state);
CREATE INDEX reviews_by_copy ON reviews (copy_of);
CREATE INDEX review_log_by_trajectory ON review_log (trajectory_id, id);
"""

class StoreTooNew(ValueError):
    """The database was written by a newer version of the app; it is left as it is."""


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def recovery_with_statuses(recovery: list[dict], correction_status: str) -> list[dict]:
    """Version 1 kept one status per correction: each recovery step starts with it (done stays done)."""
    status = "done" if correction_status in ("done", "accepted") else "draft"
    return [{**step, "status": step.get("status") if step.get("status") in RECOVERY_STEP_STATUSES else status}
            for step in recovery]


def _to_version_2(db: sqlite3.Connection) -> None:
    for statement in _statements(TEAM_SCHEMA):
        db.execute(statement)
    rows = db.execute("SELECT id, recovery, status FROM corrections").fetchall()
    for correction_id, recovery, status in rows:
        updated = recovery_with_statuses(json.loads(recovery), status)
        # not an edit: the version stays, so nobody's open view turns stale
        db.execute("UPDATE corrections SET recovery = ? WHERE id = ?",
                   (json.dumps(updated, ensure_ascii=False, separators=(",", ":")), correction_id))


# MIGRATIONS[n] brings a version-n database to version n + 1
MIGRATIONS = {1: _to_version_2}


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def too_new_message(path, found: int) -> str:
    return (f"{Path(path).name} was written by a newer version of this app (schema {found}; this one knows up to "
            f"{SCHEMA_VERSION}); update the app to open it. The file was not changed.")


def migrate(db: sqlite3.Connection, path) -> int:
    """Create or upgrade the schema in place; returns the version found before (0: a new or version-1 file)."""
    found = schema_version(db)
    if found == SCHEMA_VERSION:
        return found
    if found > SCHEMA_VERSION:
        raise StoreTooNew(too_new_message(path, found))
    db.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(db)  # another process may have migrated while we waited for the lock
        if found > SCHEMA_VERSION:
            raise StoreTooNew(too_new_message(path, found))
        version = max(found, 1)
        if found == 0:
            for statement in _statements(BASE_SCHEMA):
                db.execute(statement)
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](db)
            version += 1
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found
