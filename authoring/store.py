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
from pathlib import Path

from lora_core.data.images import image_extension, safe_resolve

from authoring.history import EditHistory
from authoring.migrations import StoreTooNew, migrate
from authoring.model import (Correction, RecordInfo, RecoveryStep, Screenshot, Step, Target, Trajectory,
                             valid_recovery_status, valid_status)
from authoring.records import (CORRECTION_COLUMNS, EDITABLE, MAX_SECONDS_PER_EDIT, TABLES, Editor, RecordMissing,
                               StaleEdit, TrajectoryLocked, decode_field, dump_json, encode_field)

__all__ = ["Editor", "RecordMissing", "StaleEdit", "Store", "StoreTooNew", "TrajectoryLocked"]


def _info(row: sqlite3.Row) -> RecordInfo:
    return RecordInfo(row["status"], row["annotator"], row["seconds"], row["version"], row["updated_at"],
                      row["session"])


class Store(EditHistory):
    """One SQLite file; images live in `images/` beside it. Safe to share between threads.

    Opening a store made by an older version migrates it in place (authoring/migrations.py); one made
    by a newer version is refused with StoreTooNew.
    """

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.folder = self.path.parent
        self.images_dir = self.folder / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self.migrated_from = migrate(self.connection(), self.path)
        except BaseException:
            self.close()
            raise

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
            (key, dump_json(value)))

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
            (relative, int(width), int(height), dump_json(list(elements))))

    def screenshot(self, relative: str) -> Screenshot:
        row = self.connection().execute("SELECT * FROM images WHERE path = ?", (relative,)).fetchone()
        if row is None:
            raise RecordMissing(f"Screenshot {relative} is not in the store.")
        return Screenshot(row["path"], row["width"], row["height"], tuple(json.loads(row["elements"])))

    def image_targets(self, relative: str) -> list[dict]:
        """Target boxes set on the steps shown this screenshot (imported or drawn), as elements to pick."""
        rows = self.connection().execute(
            "SELECT trajectory_id, position, target FROM steps WHERE image = ? AND target IS NOT NULL "
            "ORDER BY trajectory_id, position", (relative,)).fetchall()
        found, seen = [], set()
        for row in rows:
            target = Target.from_json(json.loads(row["target"]))
            if target is None or target.box in seen:
                continue
            seen.add(target.box)
            label = target.label or f"target of {row['trajectory_id']} step {row['position'] + 1}"
            found.append({"label": label, "kind": "target", "box": list(target.box)})
        return found

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
        rejected records, agreement copies and corrections still missing a screenshot left out. Counted in SQL,
        so the tab can show it on every click."""
        db = self.connection()
        not_copy = "t.id NOT IN (SELECT trajectory_id FROM reviews WHERE copy_of IS NOT NULL)"
        steps = db.execute(
            "SELECT COUNT(*) FROM steps s JOIN trajectories t ON t.id = s.trajectory_id "
            f"WHERE s.status != 'rejected' AND t.status != 'rejected' AND {not_copy}").fetchone()[0]
        corrections = db.execute(
            "SELECT COALESCE(SUM(json_array_length(c.recovery)), 0) FROM corrections c "
            "JOIN trajectories t ON t.id = c.trajectory_id WHERE c.status != 'rejected' AND t.status != 'rejected' "
            f"AND {not_copy} AND c.position < (SELECT COUNT(*) FROM steps s WHERE s.trajectory_id = t.id) "
            "AND NOT EXISTS (SELECT 1 FROM json_each(c.recovery) r "
            "WHERE json_extract(r.value, '$.image') IS NULL)").fetchone()[0]
        return steps, corrections

    def is_empty(self) -> bool:
        return self.connection().execute("SELECT COUNT(*) FROM trajectories").fetchone()[0] == 0

    def _trajectory(self, row) -> Trajectory:
        return Trajectory(row["id"], row["task"], row["app"], row["source"], _info(row))

    def _step(self, row) -> Step:
        return Step(row["id"], row["trajectory_id"], row["position"], row["image"], row["width"], row["height"],
                    row["thinking"], json.loads(row["action"]), Target.from_json(decode_field("target", row["target"])),
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
                (chosen, position, step["image"], step.get("thinking", ""), dump_json(step["action"]),
                 encode_field("target", step.get("target")), valid_status(step.get("status", status)), annotator, now))
        return chosen

    def insert_correction_row(self, db, trajectory_id: str, position: int, wrong_thinking: str, wrong_action: dict,
                              recovery: list[dict], annotator: str = "", status: str = "draft",
                              session: str = "", correction_id: int | None = None) -> int:
        cursor = db.execute(
            "INSERT INTO corrections (id, trajectory_id, position, wrong_thinking, wrong_action, recovery, status, "
            "annotator, updated_at, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (correction_id, trajectory_id, int(position), wrong_thinking, dump_json(wrong_action), dump_json(recovery),
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
        encoded = {name: encode_field(name, value) for name, value in changes.items()}
        table = TABLES[kind]
        with self.transaction() as db:
            row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise RecordMissing(f"The {kind} {record_id} no longer exists (deleted by an undo or another annotator).")
            self._check_version(kind, row, expected_version, editor, db)
            changed = {name: value for name, value in encoded.items() if row[name] != value}
            if not changed:
                return self.record(kind, record_id)
            before = {name: decode_field(name, row[name]) for name in changed}
            after = {name: decode_field(name, value) for name, value in changed.items()}
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
            (editor.session, editor.annotator, kind, str(record_id), None if before is None else dump_json(before),
             None if after is None else dump_json(after), version, time.time()))

    def set_recovery_status(self, correction_id: int, index: int, status: str, expected_version: int,
                            editor: Editor, seconds: float = 0.0) -> Correction:
        """Mark recovery step `index` (0-based) of a correction draft or done; the other steps keep theirs."""
        valid_recovery_status(status)
        correction = self.correction(correction_id)
        if not 0 <= index < len(correction.recovery):
            raise RecordMissing(f"Correction {correction_id} has no recovery step {index + 1} "
                                f"(it has {len(correction.recovery)}).")
        recovery = [step.to_json() for step in correction.recovery]
        recovery[index]["status"] = status
        return self.edit("correction", correction_id, {"recovery": recovery}, expected_version, editor, seconds)

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
        return {name: decode_field(name, row[name]) for name in CORRECTION_COLUMNS}
