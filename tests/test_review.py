"""Per-step save state, recovery screenshots, target boxes, action fields, the review queue, agreement copies,
and export of accepted trajectories only (the library and the CLI)."""
import json
import subprocess
import sys

import pytest

from authoring import review as desk
from authoring.agreement import agreement_report
from authoring.demo import seed_demo
from authoring.export import ExportOptions, export_store, store_samples
from authoring.model import Action, action_fields, box_from_corners, clean_action, parse_box
from authoring.session import WRONG, AnnotatorSession
from authoring.store import Store
from authoring.validate import validate_store
from demo import ensure_demo_data
from tests.conftest import ROOT

TRAJECTORY = "share_q3_report_with_alice"  # the demo's trajectory with a worked correction at step 2


@pytest.fixture
def store(tmp_path, workspace) -> Store:
    store = Store(tmp_path / "authoring" / "annotations.sqlite")
    seed_demo(store, ensure_demo_data(workspace))
    return store


def demo_correction(store):
    return next(c for c in store.corrections(TRAJECTORY) if c.position == 1)


def open_recovery(store, number: int, annotator="alice") -> AnnotatorSession:
    session = AnnotatorSession(annotator=annotator)
    session.open(store, TRAJECTORY, 1)
    session.choose_correction(store, demo_correction(store).id)
    session.choose_editing(f"recovery {number}")
    return session


def finish(store, trajectory_id: str, annotator: str) -> None:
    """Save every step, wrong action and recovery step done, as an annotator would with S."""
    session = AnnotatorSession(annotator=annotator)
    for position in range(len(store.steps(trajectory_id))):
        session.open(store, trajectory_id, position)
        assert session.save_done(store)[1] == []
        for correction in [c for c in store.corrections(trajectory_id) if c.position == position]:
            session.choose_correction(store, correction.id)
            for part in [WRONG] + [f"recovery {n}" for n in range(1, len(correction.recovery) + 1)]:
                session.choose_editing(part)
                assert session.save_done(store)[1] == []


# ------------------------------------------------------------------------------- save state per step


def test_save_marks_only_the_recovery_step_the_annotator_is_on_and_survives_a_reload(store):
    before = demo_correction(store)
    assert [status for _, status in before.step_states()] == ["draft", "draft", "draft"]
    session = open_recovery(store, 2)
    notes, warnings = session.save_done(store, thinking="Back on My Drive, Sales is the first folder: I open it.")
    assert warnings == [] and notes == ["Saved; recovery 2 marked done."]
    reopened = Store(store.path)  # a reload: a new connection reads the file
    after = next(c for c in reopened.corrections(TRAJECTORY) if c.position == 1)
    assert [r.status for r in after.recovery] == ["draft", "done"]
    assert after.info.status == "draft"  # the correction (its wrong action) is not marked by a recovery save
    assert after.recovery[1].thinking.startswith("Back on My Drive")
    rows = desk.step_states(reopened, TRAJECTORY)
    assert [(r["part"], r["status"]) for r in rows if r["correction"] == after.id] == [
        ("wrong action", "draft"), ("recovery 1", "draft"), ("recovery 2", "done")]
    view = AnnotatorSession(annotator="bob")
    view.open(reopened, TRAJECTORY, 1)
    view.choose_correction(reopened, after.id)
    view.choose_editing("recovery 2")
    assert view.part_status(reopened) == "done" and view.status_choices() == ("draft", "done")
    view.choose_editing("recovery 1")
    assert view.part_status(reopened) == "draft"


def test_a_recovery_step_takes_draft_or_done_only_and_undo_restores_its_state(store):
    session = open_recovery(store, 1)
    with pytest.raises(ValueError, match="A recovery step is draft or done, not 'rejected'"):
        session.set_status(store, "rejected")
    assert session.set_status(store, "done") == []
    assert demo_correction(store).recovery[0].status == "done"
    session.undo(store)
    assert demo_correction(store).recovery[0].status == "draft"


# ------------------------------------------------------------------------------- recovery screenshots


def test_a_new_correction_asks_for_the_screenshot_after_the_error_instead_of_reusing_the_step(store, tmp_path):
    session = AnnotatorSession(annotator="alice")
    session.open(store, "open_sales_folder", 1)
    notes, _ = session.mark_wrong(store, "neighbour")
    assert "needs the screenshot after the error" in notes[-1]
    correction = store.corrections("open_sales_folder")[0]
    assert correction.recovery[0].image is None
    checks = [p for p in validate_store(store) if p.check == "screenshot"]
    assert len(checks) == 1 and "upload, paste or pick the screen after the error" in checks[0].message
    session.choose_editing("recovery 1")
    view = session.view(store, tmp_path / "cache")
    assert view.needs_screenshot.startswith("Recovery 1 has no screenshot yet") and view.image.is_file()
    session.choose_editing("step")
    plain = session.view(store, tmp_path / "cache", draw=False)  # marks drawn by the browser: the file itself
    assert plain.image == store.image_path(store.steps("open_sales_folder")[1].image)
    assert store.sample_counts() == (22, 2)  # the incomplete correction is not counted (nor exported)
    with pytest.raises(ValueError, match="validation problem"):
        export_store(store, tmp_path / "out", "mai-ui")


def test_recovery_one_on_the_pre_error_screenshot_is_flagged(store):
    session = open_recovery(store, 1)
    pre_error = store.steps(TRAJECTORY)[1].image
    assert session.set_recovery_image(store, pre_error) == []
    problems = [p for p in validate_store(store) if p.check == "screenshot"]
    assert len(problems) == 1 and "recovery 1" in problems[0].record
    assert "from before the error" in problems[0].message
    # recovery 2 on that same screen is right: after "back" the screen before the error shows again
    assert demo_correction(store).recovery[1].image == pre_error


# ------------------------------------------------------------------------------- target boxes


def test_typed_boxes_are_checked_against_the_screenshot_with_one_sentence():
    assert parse_box("10, 20, 110, 220", 1080, 2400) == (10, 20, 110, 220)
    with pytest.raises(ValueError, match="x2 must be greater than x1"):
        parse_box([300, 20, 100, 220], 1080, 2400)
    with pytest.raises(ValueError, match="leaves the 1080×2400 screenshot"):
        parse_box("0 0 1200 100", 1080, 2400)
    with pytest.raises(ValueError, match="not four numbers"):
        parse_box("ten, 20, 30, 40", 1080, 2400)
    with pytest.raises(ValueError, match="four numbers"):
        parse_box([1, 2, 3], 1080, 2400)
    assert box_from_corners((500, 900), (100, 300), 1080, 2400) == (100, 300, 500, 900)


def test_a_click_outside_its_box_misses_its_target_and_boxes_come_typed_drawn_or_picked(store):
    session = AnnotatorSession(annotator="alice")
    session.open(store, "open_sales_folder", 1)
    step = store.steps("open_sales_folder")[1]
    x, y = step.action["coordinate"]
    assert session.set_target_box(store, [x + 50, y + 50, x + 150, y + 150]) == []
    assert any(p.check == "target" and "misses its target" in p.message for p in validate_store(store))
    with pytest.raises(ValueError, match="leaves the"):
        session.set_target_box(store, "0, 0, 5000, 10")
    assert list(store.steps("open_sales_folder")[1].target.box) == [x + 50, y + 50, x + 150, y + 150]  # kept
    session.start_box(store)
    session.click(store, x + 20, y + 20)
    session.click(store, x - 20, y - 20)  # opposite corner, drawn right to left
    assert list(store.steps("open_sales_folder")[1].target.box) == [x - 20, y - 20, x + 20, y + 20]
    assert store.steps("open_sales_folder")[1].action["coordinate"] == [x, y]  # the box clicks set no point
    assert not [p for p in validate_store(store) if p.check == "target"]
    labels = [e["label"] for e in session.target_elements(store)]
    assert "row: Marketing" in labels
    session.pick_target_element(store, "row: Marketing")
    assert store.steps("open_sales_folder")[1].target.label == "row: Marketing"
    with pytest.raises(ValueError, match="No element 'row: Nowhere'"):
        session.pick_target_element(store, "row: Nowhere")
    session.mark_wrong(store, None)
    with pytest.raises(ValueError, match="wrong action has no target box"):
        session.set_target_box(store, [1, 1, 10, 10])


# ------------------------------------------------------------------------------- action fields


def test_fields_follow_the_action_space_and_others_are_dropped_on_save(store):
    assert action_fields("open") == ("text",)
    assert action_fields("swipe") == ("direction", "coordinate")
    assert action_fields("system_button") == ("button",)
    assert action_fields("wait") == ()
    assert clean_action({"action": "open", "text": "Files", "button": "back", "direction": "up"}) == \
        {"action": "open", "text": "Files"}
    with pytest.raises(ValueError, match="Unknown action 'fly'"):
        action_fields("fly")
    step = store.steps("open_sales_folder")[0]
    store.edit("step", step.id, {"action": {"action": "open", "text": "Files", "button": "back"}}, step.info.version,
               desk_editor())
    session = AnnotatorSession(annotator="alice")
    session.open(store, "open_sales_folder", 0)
    session.set_fields(store, thinking="The Files app holds the drive, so I open it from the launcher.")
    assert store.steps("open_sales_folder")[0].action == {"action": "open", "text": "Files"}
    assert Action.from_dict({"action": "swipe", "direction": "left"}).to_dict() == {"action": "swipe", "direction": "left"}


def desk_editor():
    from authoring.store import Editor

    return Editor("importer", "import-session")


# ------------------------------------------------------------------------------- review queue


def team(store):
    desk.add_member(store, "alice")
    desk.add_member(store, "bob")
    desk.add_member(store, "rita", "reviewer")


def test_review_round_trip_reject_returns_to_the_annotator_then_accept(store):
    team(store)
    first = desk.claim_next(store, "alice")
    assert first.trajectory_id == store.trajectories()[0].id and first.assignee == "alice"
    assert desk.claim_next(store, "bob").trajectory_id != first.trajectory_id
    with pytest.raises(desk.ReviewRefused, match="still draft"):
        desk.submit(store, first.trajectory_id, "alice")
    finish(store, first.trajectory_id, "alice")
    with pytest.raises(desk.ReviewRefused, match="assigned to alice; only they can submit"):
        desk.submit(store, first.trajectory_id, "bob")
    with pytest.raises(desk.ReviewRefused, match="not submitted for review"):
        desk.accept(store, first.trajectory_id, "rita")
    session = AnnotatorSession(annotator="alice")
    session.open(store, first.trajectory_id, 0)
    thinking = store.steps(first.trajectory_id)[0].thinking + " CloudDrive holds the files."
    assert session.set_fields(store, thinking=thinking) == []
    assert desk.submit(store, first.trajectory_id, "alice").state == "submitted"
    # waiting for review: the editor refuses edits, undo included, and nothing changes
    assert "waiting for review" in session.set_fields(store, thinking="A late change while it is reviewed.")[0]
    notes, warnings = session.undo(store)
    assert notes == [] and "waiting for review; your undo was not saved" in warnings[0]
    assert session.mark_wrong(store, None)[1][0].startswith(f"Trajectory {first.trajectory_id} is waiting for review")
    assert store.steps(first.trajectory_id)[0].thinking == thinking and store.corrections(first.trajectory_id) == []
    with pytest.raises(desk.ReviewRefused, match="alice is an annotator; only a reviewer"):
        desk.accept(store, first.trajectory_id, "alice")
    assert [r.trajectory_id for r in desk.review_queue(store, "rita")] == [first.trajectory_id]
    with pytest.raises(desk.ReviewRefused, match="Say what to fix"):
        desk.reject(store, first.trajectory_id, "rita", "  ")
    desk.reject(store, first.trajectory_id, "rita", "Step 2's thinking should name the Sales folder.")
    mine = desk.queue(store, "alice")
    assert mine[0].trajectory_id == first.trajectory_id and mine[0].state == "returned"
    assert mine[0].comment == "Step 2's thinking should name the Sales folder."
    assert session.set_fields(store, thinking=thinking + " It opens on My Drive.") == []  # editable again
    desk.submit(store, first.trajectory_id, "alice")
    assert desk.accept(store, first.trajectory_id, "rita").state == "accepted"
    assert [e["event"] for e in desk.history(store, first.trajectory_id)] == [
        "claimed", "submitted", "returned", "submitted", "accepted"]
    # export: only the accepted trajectory
    samples = store_samples(store, ExportOptions(only_accepted=True))
    assert {s["metadata"]["source"] for s in samples} == {first.trajectory_id}
    assert len({s["metadata"]["source"] for s in store_samples(store)}) == len(store.trajectories())


def test_bad_team_input_is_refused_with_a_sentence_and_changes_nothing(store):
    team(store)
    trajectory_id = store.trajectories()[0].id
    with pytest.raises(desk.ReviewRefused, match=r"Unknown annotator 'zed': join the team first \(the team: alice, bob, rita\)"):
        desk.assign(store, trajectory_id, "zed", "rita")
    with pytest.raises(desk.ReviewRefused, match="Unknown annotator 'zed'"):
        desk.queue(store, "zed")
    with pytest.raises(desk.ReviewRefused, match="Type your name first"):
        desk.claim_next(store, "  ")
    with pytest.raises(desk.ReviewRefused, match="Unknown role"):
        desk.add_member(store, "carl", "boss")
    with pytest.raises(desk.ReviewRefused, match="is not in the store"):
        desk.assign(store, "no-such-trajectory", "alice", "rita")
    assert desk.review(store, trajectory_id).assignee == ""
    assert desk.history(store, trajectory_id) == []
    desk.assign(store, trajectory_id, "rita", "rita")
    finish(store, trajectory_id, "rita")
    desk.submit(store, trajectory_id, "rita")
    with pytest.raises(desk.ReviewRefused, match="rita annotated .*another reviewer must review it"):
        desk.accept(store, trajectory_id, "rita")
    with pytest.raises(desk.ReviewRefused, match="is submitted; only open or returned"):
        desk.assign(store, trajectory_id, "bob", "rita")


# ------------------------------------------------------------------------------- agreement


def test_a_second_annotator_gets_a_blind_linked_copy_and_agreement_is_measured(store):
    team(store)
    original = TRAJECTORY  # steps 1 and 2 are clicks
    desk.assign(store, original, "alice", "rita")
    with pytest.raises(desk.ReviewRefused, match="must be someone else"):
        desk.give_copy(store, original, "alice", "rita")
    copy = desk.give_copy(store, original, "bob", "rita")
    assert copy.copy_of == original and copy.assignee == "bob" and copy.trajectory_id.startswith(original + "~")
    with pytest.raises(desk.ReviewRefused, match="already has a copy"):
        desk.give_copy(store, original, "bob", "rita")
    first, second = store.steps(original), store.steps(copy.trajectory_id)
    assert [s.image for s in second] == [s.image for s in first]
    assert all(s.thinking == "" and "coordinate" not in s.action for s in second)  # blind: no answers copied
    assert desk.queue(store, "bob")[0].trajectory_id == copy.trajectory_id
    # bob answers step 1 at 30 px right and 40 px down of alice's point (50 px), and step 2 with another type
    session = AnnotatorSession(annotator="bob")
    session.open(store, copy.trajectory_id, 0)
    ax, ay = first[0].action["coordinate"]
    session.set_kind(store, first[0].action["action"])
    session.click(store, ax + 30, ay + 40)
    session.move(store, +1)
    session.set_kind(store, "long_press")
    session.click(store, *first[1].action["coordinate"])
    rows, summary = agreement_report(store, copy.trajectory_id)
    assert rows == [] and summary.pairs == 1 and summary.waiting == len(first)  # nothing saved done yet
    for position in (0, 1):
        session.open(store, copy.trajectory_id, position)
        session.save_done(store, thinking="My own reading of this screen, written without seeing the original.")
    rows, summary = agreement_report(store, copy.trajectory_id)
    assert [r.step for r in rows] == [1, 2] and summary.waiting == len(first) - 2
    assert rows[0].distance == 50.0 and rows[0].types_agree
    assert rows[1].distance == 0.0 and not rows[1].types_agree
    assert (rows[0].first_annotator, rows[0].second_annotator) == ("alice", "bob")
    assert summary.pairs == 1 and summary.steps == 2 and summary.type_agreement == 0.5
    assert summary.points_compared == 2 and summary.mean_distance == 25.0 and summary.median_distance == 25.0
    # copies repeat their original: never exported, never counted
    assert copy.trajectory_id not in {s["metadata"]["source"] for s in store_samples(store)}
    assert store.sample_counts() == (22, 2)


# ------------------------------------------------------------------------------- CLI


def cli(*args):
    return subprocess.run([sys.executable, "-m", "authoring", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_exports_only_accepted_trajectories_and_reports_reviews_and_agreement(store, tmp_path):
    team(store)
    refused = cli("export", "--format", "mai-ui", "--only-accepted", "--val-ratio", "0", "--out", tmp_path / "none",
                  "--store", store.path)
    assert refused.returncode == 2 and "no trajectory has been accepted" in refused.stderr
    trajectory_id = desk.claim_next(store, "alice").trajectory_id
    finish(store, trajectory_id, "alice")
    desk.submit(store, trajectory_id, "alice")
    desk.accept(store, trajectory_id, "rita", "Clean.")
    desk.give_copy(store, trajectory_id, "bob", "rita")
    done = cli("export", "--format", "mai-ui", "--only-accepted", "--val-ratio", "0", "--out", tmp_path / "out",
               "--store", store.path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["only_accepted"] is True and summary["samples"] == len(store.steps(trajectory_id))
    records = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert {r["metadata"]["source"] for r in records} == {trajectory_id}
    reviews = json.loads(cli("reviews", "--store", store.path).stdout)
    states = {r["trajectory_id"]: r["state"] for r in reviews["trajectories"]}
    assert states[trajectory_id] == "accepted" and {m["name"] for m in reviews["team"]} == {"alice", "bob", "rita"}
    agreement = json.loads(cli("agreement", "--store", store.path).stdout)
    assert agreement["summary"]["pairs"] == 1 and agreement["summary"]["waiting"] == len(store.steps(trajectory_id))
