"""The annotation store under load, after a crash, and with undo/redo per annotator session.

Writers are real processes (`python -m tests.test_authoring_store writer …`), killed with SIGKILL.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authoring.demo import seed_demo
from authoring.store import Editor, StaleEdit, Store
from demo import ensure_demo_data
from tests.conftest import ROOT

WRITERS, EDITS = 8, 250


@pytest.fixture
def store(tmp_path, workspace) -> Store:
    store = Store(tmp_path / "authoring" / "annotations.sqlite")
    seed_demo(store, ensure_demo_data(workspace))
    return store


def start_writer(db: Path, name: str, count: int, step_ids, pause_at: int | None = None,
                 writers: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.test_authoring_store", "writer", str(db), name, str(count),
               ",".join(map(str, step_ids)), str(writers)]
    if pause_at is not None:
        command.append(str(pause_at))
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the other writers did not get there")
        time.sleep(0.01)


def writer(db: str, name: str, count: int, step_ids: list[int], writers: int, pause_at: int | None) -> None:
    """Append `name:n;` to the thinking of shared steps, retrying on stale edits like an annotator would."""
    store = Store(Path(db))
    Path(f"{db}.ready-{name}").touch()  # start together, so the writers really contend
    wait_for(lambda: len(list(Path(db).parent.glob(Path(db).name + ".ready-*"))) >= writers)
    editor = Editor(name, f"session-{name}")
    stale = 0
    if pause_at is not None:
        original_log = store._log

        def log_then_hang(db_, editor_, kind, record_id, before, after, version):
            original_log(db_, editor_, kind, record_id, before, after, version)
            if after and f"{name}:{pause_at};" in json.dumps(after):
                print("inside", flush=True)  # the UPDATE and the log row are written, COMMIT is not
                time.sleep(600)

        store._log = log_then_hang
    for n in range(count):
        step_id = step_ids[n % len(step_ids)]
        while True:
            step = store.step(step_id)
            try:
                store.edit("step", step_id, {"thinking": step.thinking + f"{name}:{n};"}, step.info.version, editor,
                           seconds=0.5)
                break
            except StaleEdit:
                stale += 1
        if pause_at is not None:
            print(f"committed {n}", flush=True)
    # one deliberately stale edit once every writer is done: version 1 was seen long ago, others saved since
    wait_for(lambda: store.edit_count() >= writers * count)
    try:
        store.edit("step", step_ids[0], {"thinking": "stale overwrite"}, 1, editor)
        refused = False
    except StaleEdit as error:
        refused = error.current.info.version > 1 and "stale overwrite" not in error.current.thinking
    print(json.dumps({"stale": stale, "refused_old_version": refused}), flush=True)


def test_eight_writers_lose_nothing_and_stale_edits_are_refused(store):
    step_ids = [step.id for step in store.steps("open_sales_folder")][:2]
    before = {step_id: store.step(step_id) for step_id in step_ids}
    processes = [start_writer(store.path, f"w{i}", EDITS, step_ids, writers=WRITERS) for i in range(WRITERS)]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(report["refused_old_version"] for report in reports)
    tokens = []
    for step_id in step_ids:
        step = store.step(step_id)
        added = step.thinking[len(before[step_id].thinking):]
        tokens += [token for token in added.split(";") if token]
    assert len(tokens) == WRITERS * EDITS == len(set(tokens))  # every edit is there exactly once
    assert {f"w{i}:{n}" for i in range(WRITERS) for n in range(EDITS)} == set(tokens)
    versions = sum(store.step(i).info.version - before[i].info.version for i in step_ids)
    assert versions == WRITERS * EDITS
    assert store.edit_count() == WRITERS * EDITS
    assert sum(report["stale"] for report in reports) > 0  # contention happened and was caught, not overwritten
    assert store.step(step_ids[0]).info.seconds == pytest.approx(0.5 * WRITERS * EDITS / 2)


def test_writer_killed_mid_transaction_leaves_the_store_complete_to_its_last_commit(store):
    step_id = store.steps("search_for_sales")[0].id
    original = store.step(step_id).thinking
    process = start_writer(store.path, "k", 40, [step_id], pause_at=25)
    committed = -1
    for line in process.stdout:
        if line.startswith("committed"):
            committed = int(line.split()[1])
        if line.strip() == "inside":
            break
    assert committed == 24
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)

    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fresh = Store(store.path)
    thinking = fresh.step(step_id).thinking
    assert thinking == original + "".join(f"k:{n};" for n in range(25))  # all commits, nothing of the 26th
    assert fresh.edit_count("session-k") == 25
    # the lock died with the process: another annotator writes at once
    step = fresh.step(step_id)
    started = time.monotonic()
    fresh.edit("step", step_id, {"thinking": original}, step.info.version, Editor("after", "session-after"))
    assert time.monotonic() - started < 5
    assert fresh.step(step_id).thinking == original


def test_undo_and_redo_are_per_session_and_refuse_to_clobber(store):
    alice, bob = Editor("alice", "s-alice"), Editor("bob", "s-bob")
    step = store.steps("open_sales_folder")[1]
    first = store.edit("step", step.id, {"thinking": step.thinking + " A1"}, step.info.version, alice, 3)
    second = store.edit("step", step.id, {"action": {"action": "click", "coordinate": [100, 600]}},
                        first.info.version, alice, 2)
    assert second.info.annotator == "alice" and second.info.seconds == 5
    assert store.undo(bob) is None  # bob has nothing to undo
    assert store.undo(alice) == ("step", step.id)
    assert store.step(step.id).action == step.action
    assert store.redo(alice) == ("step", step.id)
    assert store.step(step.id).action == {"action": "click", "coordinate": [100, 600]}
    # bob edits on top: alice may no longer undo hers, and sees bob's version
    latest = store.step(step.id)
    store.edit("step", step.id, {"status": "needs review"}, latest.info.version, bob)
    with pytest.raises(StaleEdit) as refused:
        store.undo(alice)
    assert refused.value.current.info.status == "needs review"
    # a new edit ends the redo chain
    store.undo(bob)
    newest = store.step(step.id)
    store.edit("step", step.id, {"status": "done"}, newest.info.version, bob)
    assert store.redo(bob) is None


def test_a_stale_edit_names_the_other_annotator_and_carries_their_version(store):
    step = store.steps("create_archive_folder")[0]
    store.edit("step", step.id, {"thinking": step.thinking + " (checked)"}, step.info.version, Editor("bob", "b"))
    with pytest.raises(StaleEdit, match="bob saved this step"):
        store.edit("step", step.id, {"thinking": "mine"}, step.info.version, Editor("alice", "a"))
    assert store.step(step.id).thinking.endswith("(checked)")


def test_creating_and_deleting_a_correction_can_be_undone(store):
    alice = Editor("alice", "s1")
    step = store.steps("open_sales_folder")[1]
    correction = store.create_correction(step.trajectory_id, step.position, "wrong idea, clearly wrong",
                                         {"action": "click", "coordinate": [10, 10]}, [], alice)
    assert store.undo(alice) == ("correction", correction.id)
    assert all(c.id != correction.id for c in store.corrections())
    store.redo(alice)
    assert store.correction(correction.id).wrong_action["coordinate"] == [10, 10]
    store.delete_correction(correction.id, 1, alice)
    store.undo(alice)
    assert store.correction(correction.id).wrong_thinking == "wrong idea, clearly wrong"


if __name__ == "__main__" and sys.argv[1:2] == ["writer"]:
    arguments = sys.argv[2:]
    writer(arguments[0], arguments[1], int(arguments[2]), [int(v) for v in arguments[3].split(",")],
           int(arguments[4]), int(arguments[5]) if len(arguments) > 5 else None)
