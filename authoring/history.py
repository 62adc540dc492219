"""Undo and redo per annotator session, replayed from the store's edit log (see authoring/store.py)."""
from __future__ import annotations

import json
import time

from authoring.records import TABLES, Editor, RecordMissing, StaleEdit, TrajectoryLocked, encode_field
from authoring.review import edit_refusal


class EditHistory:
    """Mixed into Store: needs its transaction(), record(), _apply(), insert_correction_row() and TABLES."""

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
            trajectory_id = key if kind == "trajectory" else (
                row["trajectory_id"] if row is not None else json.loads(source or wanted or "{}").get("trajectory_id"))
            refusal = trajectory_id and edit_refusal(self, trajectory_id, "undo" if from_state == "done" else "redo")
            if refusal:
                raise TrajectoryLocked(refusal)
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
                version = self._apply(db, table, key, {n: encode_field(n, v) for n, v in values.items()}, editor, 0)
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
