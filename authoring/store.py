"""The annotation store: SQLite in WAL mode, one transaction per edit, safe for many annotators.

Every edit is saved as it is made. Each record (trajectory, step, correction) has a version; an edit
names the version it was made on, and is refused with `StaleEdit` (carrying the newer record) when
another annotator session saved in between. Every edit is logged with the fields before and after,
so each annotator session can undo and redo its own edits.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lora_core.data.images import image_extension, safe_resolve

from authoring.model import Correction, RecordInfo, RecoveryStep, Screenshot, Step, Target, Trajectory, valid_status

SCHEMA = """
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


@dataclass(frozen=True)
class Editor:
    """Who edits: the annotator's name and their session (undo and redo are per session)."""

    annotator: str
    session: str


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(field_name: str, value):
    if field_name in JSON_FIELDS:
        return None if value is None else _dump(value)
    if field_name == "status":
        return valid_status(value)
    return value


def _decode(field_name: str, value):
    if field_name in JSON_FIELDS:
        return None if value is None else json.loads(value)
    return value


def _info(row: sqlite3.Row) -> RecordInfo:
    return RecordInfo(row["status"], row["annotator"], row["seconds"], row["version"], row["updated_at"],
                      row["session"])


class Store:
    """One SQLite file; images live in `images/` beside it. Safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.folder = self.path.parent
        self.images_dir = self.folder / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.connection().executescript(SCHEMA)

    # ------------------------------------------------------------------ connections

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=True)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # durable against a killed process; WAL keeps it consistent
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE … COMMIT: writers queue for the lock instead of failing half-way."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str, default=None):
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value, db: sqlite3.Connection | None = None) -> None:
        (db or self.connection()).execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, _dump(value)))

    # ------------------------------------------------------------------ images

    def image_path(self, relative: str) -> Path:
        """The file of a stored screenshot; refuses paths that leave the store's folder."""
        return safe_resolve(self.folder, relative)

    def add_image_file(self, source: Path, width: int, height: int, elements=(), db=None, report=None) -> str:
        """Copy a checked screenshot into images/ under its content hash; returns its stored path.

        report: a list that receives the paths of files this call created.
        """
        source = Path(source)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:20]
        suffix = image_extension(source)  # the format PIL detects: a GIF named .png is stored as .gif
        relative = f"images/{digest}{suffix}"
        target = self.folder / relative
        if not target.exists():
            partial = target.with_name(target.name + f".{threading.get_ident()}.part")
            shutil.copyfile(source, partial)
            partial.replace(target)
            if report is not None:
                report.append(relative)
        self.register_image(relative, width, height, elements, db)
        return relative

    def register_image(self, relative: str, width: int, height: int, elements=(), db=None) -> None:
        (db or self.connection()).execute(
            "INSERT INTO images (path, width, height, elements) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET elements = CASE WHEN excluded.elements != '[]' "
            "THEN excluded.elements ELSE images.elements END",
            (relative, int(width), int(height), _dump(list(elements))))

    def screenshot(self, relative: str) -> Screenshot:
        row = self.connection().execute("SELECT * FROM images WHERE path = ?", (relative,)).fetchone()
        if row is None:
            raise RecordMissing(f"Screenshot {relative} is not in the store.")
        return Screenshot(row["path"], row["width"], row["height"], tuple(json.loads(row["elements"])))

    # ------------------------------------------------------------------ reading

    def trajectories(self) -> list[Trajectory]:
        rows = self.connection().execute("SELECT * FROM trajectories ORDER BY ordinal, id").fetchall()
        return [self._trajectory(row) for row in rows]

    def trajectory(self, trajectory_id: str) -> Trajectory:
        row = self.connection().execute("SELECT * FROM trajectories WHERE id = ?", (trajectory_id,)).fetchone()
        if row is None:
            raise RecordMissing(f"Trajectory {trajectory_id!r} is not in the store.")
        return self._trajectory(row)

    def steps(self, trajectory_id: str | None = None) -> list[Step]:
        query = ("SELECT s.*, i.width, i.height FROM steps s JOIN images i ON i.path = s.image")
        if trajectory_id is None:
            rows = self.connection().execute(query + " ORDER BY s.trajectory_id, s.position").fetchall()
        else:
            rows = self.connection().execute(query + " WHERE s.trajectory_id = ? ORDER BY s.position",
                                             (trajectory_id,)).fetchall()
        return [self._step(row) for row in rows]

    def step(self, step_id: int) -> Step:
        row = self.connection().execute(
            "SELECT s.*, i.width, i.height FROM steps s JOIN images i ON i.path = s.image WHERE s.id = ?",
            (int(step_id),)).fetchone()
        if row is None:
            raise RecordMissing(f"Step {step_id} is not in the store.")
        return self._step(row)

    def corrections(self, trajectory_id: str | None = None) -> list[Correction]:
        if trajectory_id is None:
            rows = self.connection().execute("SELECT * FROM corrections ORDER BY trajectory_id, position, id").fetchall()
        else:
            rows = self.connection().execute(
                "SELECT * FROM corrections WHERE trajectory_id = ? ORDER BY position, id", (trajectory_id,)).fetchall()
        return [self._correction(row) for row in rows]

    def correction(self, correction_id: int) -> Correction:
        row = self.connection().execute("SELECT * FROM corrections WHERE id = ?", (int(correction_id),)).fetchone()
        if row is None:
            raise RecordMissing(f"Correction {correction_id} is not in the store (it may have been deleted or undone).")
        return self._correction(row)

    def record(self, kind: str, record_id):
        return {"trajectory": self.trajectory, "step": self.step, "correction": self.correction}[kind](record_id)

    def progress(self) -> dict[str, dict]:
        """Per trajectory: steps, steps finished (done or accepted), corrections, seconds spent."""
        rows = self.connection().execute(
            "SELECT t.id, "
            " (SELECT COUNT(*) FROM steps s WHERE s.trajectory_id = t.id) AS steps, "
            " (SELECT COUNT(*) FROM steps s WHERE s.trajectory_id = t.id AND s.status IN ('done', 'accepted')) AS finished, "
            " (SELECT COUNT(*) FROM corrections c WHERE c.trajectory_id = t.id) AS corrections, "
            " t.seconds + (SELECT COALESCE(SUM(s.seconds), 0) FROM steps s WHERE s.trajectory_id = t.id) "
            "   + (SELECT COALESCE(SUM(c.seconds), 0) FROM corrections c WHERE c.trajectory_id = t.id) AS seconds "
            "FROM trajectories t ORDER BY t.ordinal, t.id").fetchall()
        return {row["id"]: dict(row) for row in rows}

    def sample_counts(self) -> tuple[int, int]:
        """(step samples, correction samples) an export would write: one per step, one per recovery step;
        rejected records left out. Counted in SQL, so the tab can show it on every click."""
        db = self.connection()
        steps = db.execute(
            "SELECT COUNT(*) FROM steps s JOIN trajectories t ON t.id = s.trajectory_id "
            "WHERE s.status != 'rejected' AND t.status != 'rejected'").fetchone()[0]
        corrections = db.execute(
            "SELECT COALESCE(SUM(json_array_length(c.recovery)), 0) FROM corrections c "
            "JOIN trajectories t ON t.id = c.trajectory_id WHERE c.status != 'rejected' AND t.status != 'rejected' "
            "AND c.position < (SELECT COUNT(*) FROM steps s WHERE s.trajectory_id = t.id)").fetchone()[0]
        return steps, corrections

    def is_empty(self) -> bool:
        return self.connection().execute("SELECT COUNT(*) FROM trajectories").fetchone()[0] == 0

    def _trajectory(self, row) -> Trajectory:
        return Trajectory(row["id"], row["task"], row["app"], row["source"], _info(row))

    def _step(self, row) -> Step:
        return Step(row["id"], row["trajectory_id"], row["position"], row["image"], row["width"], row["height"],
                    row["thinking"], json.loads(row["action"]), Target.from_json(_decode("target", row["target"])),
                    _info(row))

    def _correction(self, row) -> Correction:
        recovery = tuple(RecoveryStep.from_json(item) for item in json.loads(row["recovery"]))
        return Correction(row["id"], row["trajectory_id"], row["position"], row["wrong_thinking"],
                          json.loads(row["wrong_action"]), recovery, _info(row))

    # ------------------------------------------------------------------ bulk insert (import, demo)

    def insert_trajectory(self, db, trajectory_id: str, task: str, app: str, source: str, steps: list[dict],
                          annotator: str = "", status: str = "draft") -> str:
        """Insert a trajectory and its steps inside the caller's transaction; returns the id used.

        steps: {"image" (stored path), "thinking", "action", "target" (dict or None), "status"}.
        An id already taken gets a numeric suffix.
        """
        chosen, suffix = trajectory_id, 1
        while db.execute("SELECT 1 FROM trajectories WHERE id = ?", (chosen,)).fetchone():
            suffix += 1
            chosen = f"{trajectory_id}-{suffix}"
        ordinal = db.execute("SELECT COALESCE(MAX(ordinal), 0) + 1 FROM trajectories").fetchone()[0]
        now = time.time()
        db.execute("INSERT INTO trajectories (id, task, app, source, ordinal, status, annotator, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (chosen, task, app, source, ordinal, status, annotator, now))
        for position, step in enumerate(steps):
            db.execute(
                "INSERT INTO steps (trajectory_id, position, image, thinking, action, target, status, annotator, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (chosen, position, step["image"], step.get("thinking", ""), _dump(step["action"]),
                 _encode("target", step.get("target")), valid_status(step.get("status", status)), annotator, now))
        return chosen

    def insert_correction_row(self, db, trajectory_id: str, position: int, wrong_thinking: str, wrong_action: dict,
                              recovery: list[dict], annotator: str = "", status: str = "draft",
                              session: str = "", correction_id: int | None = None) -> int:
        cursor = db.execute(
            "INSERT INTO corrections (id, trajectory_id, position, wrong_thinking, wrong_action, recovery, status, "
            "annotator, updated_at, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (correction_id, trajectory_id, int(position), wrong_thinking, _dump(wrong_action), _dump(recovery),
             valid_status(status), annotator, time.time(), session))
        return cursor.lastrowid

    # ------------------------------------------------------------------ edits

    def edit(self, kind: str, record_id, changes: dict, expected_version: int, editor: Editor,
             seconds: float = 0.0):
        """Save one edit; returns the updated record. Raises StaleEdit if someone else saved in between."""
        if kind not in EDITABLE:
            raise ValueError(f"Unknown record kind {kind!r}.")
        unknown = set(changes) - set(EDITABLE[kind])
        if unknown:
            raise ValueError(f"A {kind} has no editable field {', '.join(sorted(unknown))}.")
        encoded = {name: _encode(name, value) for name, value in changes.items()}
        table = TABLES[kind]
        with self.transaction() as db:
            row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise RecordMissing(f"The {kind} {record_id} no longer exists (deleted by an undo or another annotator).")
            self._check_version(kind, row, expected_version, editor, db)
            changed = {name: value for name, value in encoded.items() if row[name] != value}
            if not changed:
                return self.record(kind, record_id)
            before = {name: _decode(name, row[name]) for name in changed}
            after = {name: _decode(name, value) for name, value in changed.items()}
            version = self._apply(db, table, record_id, changed, editor, seconds)
            # a new edit ends this session's redo chain
            db.execute("UPDATE edits SET state = 'dropped' WHERE session = ? AND state = 'undone'", (editor.session,))
            self._log(db, editor, kind, record_id, before, after, version)
        return self.record(kind, record_id)

    def _check_version(self, kind: str, row, expected_version: int, editor: Editor, db=None) -> None:
        """Refuse unless the record is as the annotator saw it, or changed since by their own session only."""
        if row["version"] == expected_version:
            return
        others = (db or self.connection()).execute(
            "SELECT annotator FROM edits WHERE kind = ? AND record_id = ? AND version > ? AND session != ? "
            "ORDER BY id DESC LIMIT 1", (kind, str(row["id"]), expected_version, editor.session)).fetchone()
        if others is None and expected_version < row["version"] and row["session"] == editor.session:
            return  # two quick edits of one session arriving out of order
        raise StaleEdit(
            f"{row['annotator'] or 'Another annotator'} saved this {kind} (version {row['version']}) after you "
            f"opened version {expected_version}; your edit was not applied. You now see their version: "
            "redo your change if it is still needed.",
            self._record_from_row(kind, row))

    def _record_from_row(self, kind: str, row):
        return self.record(kind, row["id"])

    def _apply(self, db, table: str, record_id, changed: dict, editor: Editor, seconds: float) -> int:
        assignments = ", ".join(f"{name} = ?" for name in changed)
        seconds = min(max(float(seconds or 0), 0.0), MAX_SECONDS_PER_EDIT)
        db.execute(
            f"UPDATE {table} SET {assignments}, version = version + 1, annotator = ?, session = ?, "
            "seconds = seconds + ?, updated_at = ? WHERE id = ?",
            (*changed.values(), editor.annotator, editor.session, seconds, time.time(), record_id))
        return db.execute(f"SELECT version FROM {table} WHERE id = ?", (record_id,)).fetchone()[0]

    def _log(self, db, editor: Editor, kind: str, record_id, before, after, version) -> None:
        db.execute(
            "INSERT INTO edits (session, annotator, kind, record_id, before, after, version, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (editor.session, editor.annotator, kind, str(record_id), None if before is None else _dump(before),
             None if after is None else _dump(after), version, time.time()))

    def create_correction(self, trajectory_id: str, position: int, wrong_thinking: str, wrong_action: dict,
                          recovery: list[dict], editor: Editor) -> Correction:
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM steps WHERE trajectory_id = ? AND position = ?",
                              (trajectory_id, int(position))).fetchone():
                raise RecordMissing(f"Trajectory {trajectory_id!r} has no step {position + 1}.")
            correction_id = self.insert_correction_row(db, trajectory_id, position, wrong_thinking, wrong_action,
                                                       recovery, editor.annotator, session=editor.session)
            db.execute("UPDATE edits SET state = 'dropped' WHERE session = ? AND state = 'undone'", (editor.session,))
            row = db.execute("SELECT * FROM corrections WHERE id = ?", (correction_id,)).fetchone()
            self._log(db, editor, "correction", correction_id, None, self._row_json(row), 1)
        return self.correction(correction_id)

    def delete_correction(self, correction_id: int, expected_version: int, editor: Editor) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM corrections WHERE id = ?", (int(correction_id),)).fetchone()
            if row is None:
                return
            self._check_version("correction", row, expected_version, editor, db)
            db.execute("DELETE FROM corrections WHERE id = ?", (int(correction_id),))
            db.execute("UPDATE edits SET state = 'dropped' WHERE session = ? AND state = 'undone'", (editor.session,))
            self._log(db, editor, "correction", correction_id, self._row_json(row), None, None)

    @staticmethod
    def _row_json(row) -> dict:
        return {name: _decode(name, row[name]) for name in CORRECTION_COLUMNS}

    # ------------------------------------------------------------------ undo / redo

    def undo(self, editor: Editor):
        """Undo this session's latest edit; returns (kind, record id) or None when nothing is left to undo."""
        return self._replay(editor, "done", "undone")

    def redo(self, editor: Editor):
        return self._replay(editor, "undone", "done")

    def _replay(self, editor: Editor, from_state: str, to_state: str):
        order = "id DESC" if from_state == "done" else "at DESC, id ASC"
        with self.transaction() as db:
            edit = db.execute(f"SELECT * FROM edits WHERE session = ? AND state = ? ORDER BY {order} LIMIT 1",
                              (editor.session, from_state)).fetchone()
            if edit is None:
                return None
            kind, record_id = edit["kind"], edit["record_id"]
            if from_state == "done":
                source, wanted = edit["after"], edit["before"]
            else:
                source, wanted = edit["before"], edit["after"]
            table = TABLES[kind]
            key = record_id if kind == "trajectory" else int(record_id)
            row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (key,)).fetchone()
            if kind == "correction" and (source is None or wanted is None):
                version = self._replay_existence(db, editor, edit, row, key, wanted)
            else:
                if row is None:
                    raise RecordMissing(f"The {kind} this edit changed no longer exists; nothing to {'undo' if from_state == 'done' else 'redo'}.")
                if row["version"] != edit["version"]:
                    raise StaleEdit(
                        f"{row['annotator'] or 'Another annotator'} changed this {kind} after your edit "
                        f"(now version {row['version']}); {'undo' if from_state == 'done' else 'redo'} refused so "
                        "their work is kept. You now see their version.", self.record(kind, key))
                values = json.loads(wanted)
                version = self._apply(db, table, key, {n: _encode(n, v) for n, v in values.items()}, editor, 0)
            db.execute("UPDATE edits SET state = ?, version = ?, at = ? WHERE id = ?",
                       (to_state, version, time.time(), edit["id"]))
        return kind, key

    def _replay_existence(self, db, editor, edit, row, key, wanted):
        """Undo/redo of creating or deleting a correction."""
        if wanted is None:  # the correction must disappear
            if row is None:
                return None
            if edit["version"] is not None and row["version"] != edit["version"] and row["session"] != editor.session:
                raise StaleEdit(f"{row['annotator']} edited this correction since; it is kept.", self.correction(key))
            db.execute("DELETE FROM corrections WHERE id = ?", (key,))
            return None
        values = json.loads(wanted)
        if row is None:
            self.insert_correction_row(db, values["trajectory_id"], values["position"], values["wrong_thinking"],
                                       values["wrong_action"], values["recovery"], editor.annotator,
                                       values["status"], editor.session, correction_id=key)
        return db.execute("SELECT version FROM corrections WHERE id = ?", (key,)).fetchone()[0]

    def edit_count(self, session: str | None = None) -> int:
        if session is None:
            return self.connection().execute("SELECT COUNT(*) FROM edits WHERE state = 'done'").fetchone()[0]
        return self.connection().execute("SELECT COUNT(*) FROM edits WHERE state = 'done' AND session = ?",
                                         (session,)).fetchone()[0]
