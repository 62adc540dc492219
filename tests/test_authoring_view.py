"""The Authoring step view's server side: one canvas value carries the display panels, the neighbouring
screenshots to load ahead, what the edit said, and the token of the click it answers."""
import json
import threading
import time

import pytest

from authoring.demo import seed_demo
from authoring.session import AnnotatorSession
from authoring.store import Store
from demo import ensure_demo_data
from ui.authoring_view import PANELS, VIEW_FIELDS, render_view
from ui.canvas import SessionMemory

TRAJECTORY = "share_q3_report_with_alice"  # 7 steps


@pytest.fixture
def store(tmp_path, workspace) -> Store:
    store = Store(tmp_path / "authoring" / "annotations.sqlite")
    seed_demo(store, ensure_demo_data(workspace))
    return store


def canvas_of(store, tmp_path, session, **said) -> dict:
    values = render_view(store, tmp_path / "cache", session, len(VIEW_FIELDS), **said)
    assert len(values) == len(VIEW_FIELDS)
    return json.loads(values[VIEW_FIELDS.index("canvas")])


def test_the_canvas_value_carries_every_panel_and_the_neighbours_to_load_ahead(store, tmp_path):
    session = AnnotatorSession(annotator="ann")
    session.open(store, TRAJECTORY, 3)
    value = canvas_of(store, tmp_path, session)
    assert sorted(value["panels"]) == sorted(f"auth-{name}" for name in PANELS)
    assert "Step <b>4</b> of 7" in value["panels"]["auth-header"]
    assert value["panels"]["auth-states"].count("<tr data-step=") == len(store.steps(TRAJECTORY)) + sum(
        1 + len(c.recovery) for c in store.corrections(TRAJECTORY))
    assert value["panels"]["auth-history"].count("<figure>") == 3  # steps 1–3
    steps = store.steps(TRAJECTORY)
    assert value["preload"] == [str(store.image_path(steps[4].image)), str(store.image_path(steps[2].image))]
    assert value["src"] == str(store.image_path(steps[3].image))
    assert value["answered"] == "" and value["panels"]["auth-notice"] == "" and value["locked"] is False

    session.open(store, TRAJECTORY, 6)  # the last step: only the one before is loaded ahead
    assert canvas_of(store, tmp_path, session)["preload"] == [str(store.image_path(steps[5].image))]


def test_what_an_edit_said_is_escaped_into_the_notice_with_the_token_it_answers(store, tmp_path):
    session = AnnotatorSession(annotator="ann")
    session.open(store, TRAJECTORY, 0)
    value = canvas_of(store, tmp_path, session, notes=["Saved; step marked done."],
                      warnings=["x2 must be greater than x1 <b>"], answered="auth-save-1")
    notice = value["panels"]["auth-notice"]
    assert notice.index("auth-warning") < notice.index("auth-note")  # the refusal first
    assert "x2 must be greater than x1 &lt;b&gt;" in notice and "<b>" not in notice
    assert value["answered"] == "auth-save-1"


def test_edits_of_one_session_run_one_after_the_other_and_other_sessions_meanwhile():
    memory = SessionMemory()
    inside, most = [0], [0]

    def edit():
        with memory.lock("annotator-a"):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.01)
            inside[0] -= 1

    threads = [threading.Thread(target=edit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
    with memory.lock("annotator-a"):  # another session is not held up by it
        other = threading.Thread(target=lambda: memory.lock("annotator-b").acquire(timeout=2) and inside.append("b"))
        other.start()
        other.join()
    assert inside[-1] == "b"
