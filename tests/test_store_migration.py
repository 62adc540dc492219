"""A store made before schema versions (user_version 0) migrates in place, all or nothing; a newer one is refused.

The old database is built with the first schema's SQL copied here as it was (authoring/store.py before
versions), so the test keeps meaning the same thing however the code's schema moves on.
"""
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from authoring import migrations
from authoring import review as desk
from authoring.migrations import SCHEMA_VERSION, StoreTooNew
from authoring.store import Editor, Store
from tests.conftest import ROOT

FIRST_SCHEMA = """
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
OLD_TABLES = ("meta", "images", "trajectories", "steps", "corrections", "edits")


def recovery_step(image, thinking, action, target=None):
    return {"image": image, "width": 1080, "height": 2400, "thinking": thinking, "action": action, "target": target}


def build_first_schema_store(path):
    """A store as the first schema wrote it (WAL, like the app), with a record of every kind and an edit log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(FIRST_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('demo_seeded', 'true')")
    elements = json.dumps([{"label": "row: Sales", "kind": "row", "box": [0, 500, 1080, 620]}])
    db.execute("INSERT INTO images VALUES ('images/a.png', 1080, 2400, ?)", (elements,))
    db.execute("INSERT INTO images VALUES ('images/b.png', 1080, 2400, '[]')")
    db.execute("INSERT INTO trajectories (id, task, app, source, ordinal, status, annotator, seconds, version, "
               "updated_at, session) VALUES ('t1', 'Open the Sales folder', 'CloudDrive', 'demo', 1, 'done', 'alice', "
               "42.5, 3, 1700000000, 's-old')")
    db.execute("INSERT INTO trajectories (id, task, ordinal) VALUES ('t2', 'Search for sales', 2)")
    db.execute("INSERT INTO steps (id, trajectory_id, position, image, thinking, action, target, status, annotator, "
               "version, session) VALUES (1, 't1', 0, 'images/a.png', 'Sales is the first row, so I open it.', ?, ?, "
               "'done', 'alice', 2, 's-old')",
               (json.dumps({"action": "click", "coordinate": [540, 560]}),
                json.dumps({"box": [0, 500, 1080, 620], "label": "row: Sales"})))
    db.execute("INSERT INTO steps (id, trajectory_id, position, image, thinking, action) VALUES "
               "(2, 't1', 1, 'images/b.png', 'The folder is open: the task is done.', ?)",
               (json.dumps({"action": "terminate", "status": "success"}),))
    db.execute("INSERT INTO steps (id, trajectory_id, position, image, thinking, action) VALUES "
               "(3, 't2', 0, 'images/a.png', 'The search icon is at the top right.', ?)",
               (json.dumps({"action": "click", "coordinate": [996, 180]}),))
    done_recovery = [recovery_step("images/b.png", "Wrong folder: I go back.", {"action": "system_button", "button": "back"}),
                     recovery_step("images/a.png", "Sales is the first row.", {"action": "click", "coordinate": [540, 560]},
                                   {"box": [0, 500, 1080, 620], "label": "row: Sales"})]
    db.execute("INSERT INTO corrections (id, trajectory_id, position, wrong_thinking, wrong_action, recovery, status, "
               "annotator, version) VALUES (7, 't1', 0, 'Marketing might hold it.', ?, ?, 'done', 'alice', 4)",
               (json.dumps({"action": "click", "coordinate": [540, 700]}), json.dumps(done_recovery)))
    db.execute("INSERT INTO corrections (id, trajectory_id, position, wrong_thinking, wrong_action, recovery) VALUES "
               "(8, 't2', 0, 'The menu might search.', ?, ?)",
               (json.dumps({"action": "click", "coordinate": [60, 180]}), json.dumps(done_recovery[:1])))
    # alice's last edit of step 1 (thinking), still undoable by her session
    db.execute("INSERT INTO edits (session, annotator, kind, record_id, before, after, version, at) VALUES "
               "('s-old', 'alice', 'step', '1', ?, ?, 2, 1700000000)",
               (json.dumps({"thinking": "Sales."}), json.dumps({"thinking": "Sales is the first row, so I open it."})))
    db.close()


def rows(path, table):
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def user_version(path):
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def test_a_store_of_the_first_schema_migrates_in_place_without_losing_a_record(tmp_path):
    path = tmp_path / "authoring" / "annotations.sqlite"
    build_first_schema_store(path)
    before = {table: rows(path, table) for table in OLD_TABLES}
    assert user_version(path) == 0

    store = Store(path)
    assert store.migrated_from == 0 and user_version(path) == SCHEMA_VERSION
    after = {table: rows(path, table) for table in OLD_TABLES}
    for table in ("meta", "images", "trajectories", "steps", "edits"):
        assert after[table] == before[table], f"{table} changed in the migration"
    for old, new in zip(before["corrections"], after["corrections"]):
        assert {k: v for k, v in new.items() if k != "recovery"} == {k: v for k, v in old.items() if k != "recovery"}
        old_steps, new_steps = json.loads(old["recovery"]), json.loads(new["recovery"])
        assert [{k: v for k, v in s.items() if k != "status"} for s in new_steps] == old_steps
    # a recovery step starts with its correction's state: done stays done, draft stays draft
    assert [r.status for r in store.correction(7).recovery] == ["done", "done"]
    assert [r.status for r in store.correction(8).recovery] == ["draft"]
    assert store.correction(7).recovery[1].target.label == "row: Sales"
    assert store.step(1).target.box == (0, 500, 1080, 620) and store.trajectory("t1").info.seconds == 42.5
    assert store.get_meta("demo_seeded") is True
    # the new tables work on the old records: everything open and unassigned, the edit log still undoes
    assert [(r.trajectory_id, r.state, r.assignee) for r in desk.reviews(store)] == [("t1", "open", ""), ("t2", "open", "")]
    assert store.undo(Editor("alice", "s-old")) == ("step", 1)
    assert store.step(1).thinking == "Sales."
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert Store(path).migrated_from == SCHEMA_VERSION  # opening again changes nothing


def test_a_failed_migration_leaves_the_old_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "annotations.sqlite"
    build_first_schema_store(path)
    before = {table: rows(path, table) for table in OLD_TABLES}
    real = migrations.MIGRATIONS[1]

    def half_then_crash(db):
        real(db)  # every change of the migration is made, then it fails before COMMIT
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setitem(migrations.MIGRATIONS, 1, half_then_crash)
    with pytest.raises(sqlite3.OperationalError):
        Store(path)
    assert user_version(path) == 0
    assert {table: rows(path, table) for table in OLD_TABLES} == before
    with sqlite3.connect(path) as raw:
        assert not raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'reviews'").fetchone()
    monkeypatch.setitem(migrations.MIGRATIONS, 1, real)
    assert Store(path).migrated_from == 0  # the next open migrates it


def test_several_openers_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "annotations.sqlite"
    build_first_schema_store(path)
    results, errors = [], []

    def open_store():
        try:
            results.append(Store(path).migrated_from)
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results).count(0) == 1 and results.count(SCHEMA_VERSION) == 3
    assert [r.status for r in Store(path).correction(7).recovery] == ["done", "done"]


def test_a_store_from_a_newer_app_is_refused_with_a_sentence_and_left_unchanged(tmp_path):
    path = tmp_path / "store" / "annotations.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreTooNew) as refused:
        Store(path)
    assert str(refused.value) == (f"annotations.sqlite was written by a newer version of this app (schema "
                                  f"{SCHEMA_VERSION + 1}; this one knows up to {SCHEMA_VERSION}); update the app to "
                                  "open it. The file was not changed.")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    cli = subprocess.run([sys.executable, "-m", "authoring", "validate", "--store", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and cli.stderr.strip().splitlines() == [f"error: {refused.value}"]
