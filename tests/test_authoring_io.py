"""Import (all or nothing, path-safe, conventions), export formats, round trips, split, CLI."""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from authoring.demo import seed_demo
from authoring.export import OMITTED_SCREENSHOT_TEXT, ExportOptions, export_store, split_by_trajectory, store_samples
from authoring.importer import ImportOptions, ImportRefused, import_source
from authoring.session import WRONG, AnnotatorSession
from authoring.store import Store
from authoring.validate import validate_store
from lora_core.data.coords import from_original, quantization_error, to_original
from demo import ensure_demo_data
from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.data.samples import normalize_record
from tests.conftest import PEER_DATA, ROOT
from tests.images import truncated_png

FIGURES = PEER_DATA / "mai-ui" / "screenshots"
MAI_MESSAGES = PEER_DATA / "mai-ui" / "messages"


@pytest.fixture
def store(tmp_path, workspace) -> Store:
    store = Store(tmp_path / "store" / "annotations.sqlite")
    seed_demo(store, ensure_demo_data(workspace))
    return store


def empty_store(tmp_path, name="fresh") -> Store:
    return Store(tmp_path / name / "annotations.sqlite")


def snapshot(store: Store) -> dict:
    """Trajectories as content: task, steps (thinking, action, target box, screenshot size), corrections."""
    out = {}
    for trajectory in store.trajectories():
        steps = [(s.thinking, s.action, list(s.target.box) if s.target else None, (s.width, s.height))
                 for s in store.steps(trajectory.id)]
        corrections = [(c.position, c.wrong_thinking, c.wrong_action,
                        [(r.thinking, r.action, (r.width, r.height)) for r in c.recovery])
                       for c in store.corrections(trajectory.id)]
        out[trajectory.id] = (trajectory.task, steps, corrections)
    return out


def folder_source(tmp_path: Path, steps: list[dict], name="src") -> Path:
    folder = tmp_path / name
    (folder / "shots").mkdir(parents=True)
    for number in range(1, 4):
        shutil.copy(FIGURES / f"figure{number}.png", folder / "shots" / f"s{number}.png")
    trajectory = {"id": "t1", "task": "Open the settings and turn on Wi-Fi", "steps": steps}
    (folder / "trajectories.json").write_text(json.dumps([trajectory]))
    return folder


def good_steps():
    return [
        {"image": "shots/s1.png", "thinking": "The home screen is shown; Settings is in the dock, so I open it.",
         "action": {"action": "click", "coordinate": [500, 900]}, "target": {"box": [450, 850, 550, 950], "label": "x"}},
        {"image": "shots/s2.png", "thinking": "The list is long; I swipe up to reach the Wi-Fi entry below.",
         "action": {"action": "swipe", "direction": "up", "coordinate": [500, 800]}},
        {"image": "shots/s3.png", "thinking": "The icon must move to the dock, so I drag it down there.",
         "action": {"action": "drag", "start_coordinate": [100, 200], "end_coordinate": [900, 950]}},
    ]


# ------------------------------------------------------------------------------- import


def test_folder_import_converts_each_convention_to_abs_original(tmp_path, encoder):
    for coords, settings in (("norm1000", None), ("norm999", None), ("abs-resized", ImageSettings(max_dim=1024))):
        store = empty_store(tmp_path, coords)
        source = folder_source(tmp_path, good_steps(), name=f"src-{coords}")
        max_dim = settings.max_dim if settings else None
        if coords == "abs-resized":  # points inside the 461×1024 resized image
            steps = good_steps()
            steps[2]["action"] = {"action": "drag", "start_coordinate": [40, 80], "end_coordinate": [400, 1000]}
            steps[0]["action"]["coordinate"], steps[0]["target"]["box"] = [200, 400], [180, 380, 220, 420]
            steps[1]["action"]["coordinate"] = [200, 400]
            source = folder_source(tmp_path, steps, name="src-resized")
        summary = import_source(store, source, ImportOptions("folder", coords, max_dim, encoder=encoder))
        assert summary["steps"] == 3
        steps = store.steps("t1")
        geom = geometry(1080, 2400, ImageSettings(max_dim=max_dim))
        drag = steps[2].action
        if coords == "abs-resized":
            assert (geom.resized_width, geom.resized_height) == (448, 1024)
            assert drag["end_coordinate"] == pytest.approx([400 / geom.scale_x, 1000 / geom.scale_y])
            assert steps[0].target.box == pytest.approx((180 / geom.scale_x, 380 / geom.scale_y,
                                                         220 / geom.scale_x, 420 / geom.scale_y))
        else:
            scale = 1000 if coords == "norm1000" else 999
            assert steps[0].action["coordinate"] == pytest.approx([500 * 1080 / scale, 900 * 2400 / scale])
            assert drag["start_coordinate"] == pytest.approx([100 * 1080 / scale, 200 * 2400 / scale])
            assert drag["end_coordinate"] == pytest.approx([900 * 1080 / scale, 950 * 2400 / scale])
            assert steps[1].action["coordinate"] == pytest.approx([500 * 1080 / scale, 800 * 2400 / scale])


def broken(tmp_path, change, name) -> Path:
    steps = good_steps()
    change(steps)
    return folder_source(tmp_path, steps, name=name)


MALFORMED = {
    "missing image": (lambda s: s[1].update(image="shots/nope.png"), "step 2.*does not exist"),
    "escape": (lambda s: s[1].update(image="../../etc/passwd"), "step 2.*outside"),
    "absolute": (lambda s: s[0].update(image="/etc/hostname"), "step 1.*outside"),
    "out of range": (lambda s: s[2]["action"].update(end_coordinate=[900, 1200]), "step 3.*outside the norm1000 range"),
    "wrong type": (lambda s: s[0]["action"].update(coordinate=["500", 900]), "step 1.*two numbers"),
    "no action": (lambda s: s[1].pop("action"), "step 2 has no 'action'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_folder_is_refused_whole_and_named(tmp_path, store, case):
    change, message = MALFORMED[case]
    before, files_before = snapshot(store), sorted(store.images_dir.iterdir())
    with pytest.raises(ImportRefused, match=message):
        import_source(store, broken(tmp_path, change, case.replace(" ", "-")), ImportOptions("folder", "norm1000"))
    assert snapshot(store) == before and sorted(store.images_dir.iterdir()) == files_before


def test_undecodable_image_and_bad_json_are_refused(tmp_path, store):
    source = folder_source(tmp_path, good_steps(), name="damaged")
    truncated_png(source / "shots" / "s3.png", FIGURES / "figure3.png")
    files_before = sorted(store.images_dir.iterdir())
    with pytest.raises(ImportRefused, match="step 3.*damaged"):
        import_source(store, source, ImportOptions("folder", "norm1000"))
    assert sorted(store.images_dir.iterdir()) == files_before  # nothing copied for a refused import
    lines = tmp_path / "steps.jsonl"
    lines.write_text('{"trajectory": "a", "task": "t", "image": "x.png", "thinking": "", "action": {}}\n{oops\n')
    with pytest.raises(ImportRefused, match="steps.jsonl line 2 is not valid JSON"):
        import_source(store, lines, ImportOptions("auto", "norm1000"))


def test_real_mai_ui_message_lists(tmp_path):
    """MAI-UI's own lists strip screenshots ([IMAGE_DATA]); with the files beside them they import (norm999)."""
    store = empty_store(tmp_path)
    messages = json.loads((MAI_MESSAGES / "test_build_messages_with_single_history.json").read_text())
    folder = tmp_path / "mai"
    folder.mkdir()
    (folder / "as_built.json").write_text(json.dumps(messages))
    with pytest.raises(ImportRefused, match=r"as_built.json, message 3: image 1 is '\[IMAGE_DATA\]'"):
        import_source(store, folder / "as_built.json", ImportOptions("mai-ui", "norm999"))
    shutil.copy(FIGURES / "figure4.png", folder / "figure4.png")
    shutil.copy(FIGURES / "figure5.png", folder / "figure5.png")
    images = iter(["figure4.png", "figure5.png"])
    for message in messages:
        for item in message["content"] if isinstance(message["content"], list) else []:
            if item.get("type") == "image_url":
                item["image_url"]["url"] = next(images)
    (folder / "with_files.json").write_text(json.dumps(messages))
    summary = import_source(store, folder / "with_files.json", ImportOptions("mai-ui", "norm999"))
    assert summary["trajectories"] == 1 and summary["steps"] == 1
    (step,) = store.steps()
    assert step.action == {"action": "click", "coordinate": pytest.approx([499 * 1080 / 999, 499 * 2400 / 999])}
    assert store.trajectories()[0].task == "Click the WiFi button"
    assert step.thinking == "Opening settings" and validate_store(store) == []


def test_mai_ui_actions_outside_the_action_space_are_refused(tmp_path):
    store = empty_store(tmp_path)
    messages = json.loads((MAI_MESSAGES / "test_build_messages_with_ask_user_response.json").read_text())
    shutil.copy(FIGURES / "figure1.png", tmp_path / "f.png")
    for message in messages:
        for item in message["content"] if isinstance(message["content"], list) else []:
            if item.get("type") == "image_url":
                item["image_url"]["url"] = "f.png"
    (tmp_path / "ask.json").write_text(json.dumps(messages))
    with pytest.raises(ImportRefused, match="ask.json, message 4: Unknown action 'ask_user'"):
        import_source(store, tmp_path / "ask.json", ImportOptions("auto", "norm999"))


def test_llamafactory_demo_is_refused_with_the_record_named(tmp_path):
    """LLaMA-Factory's own demo set holds chat answers, not agent answers: refused, record named."""
    store = empty_store(tmp_path)
    with pytest.raises(ImportRefused, match=r"mllm_demo.json record 1, message 2: the answer is free text.*"
                                            r"Mask Inspector.*lora_core audit"):
        import_source(store, PEER_DATA / "llamafactory" / "mllm_demo.json", ImportOptions("llamafactory", "norm1000"))
    assert store.is_empty()


@pytest.mark.parametrize("content", ["<image>Open the Sales folder", "Open the Sales folder<image>",
                                     "Open the Sales folder\n<image>"])
def test_llamafactory_image_placeholder_keeps_the_instruction(tmp_path, content):
    """A standard LLaMA-Factory record puts <image> before or after the instruction; the task survives either way."""
    from PIL import Image

    folder = tmp_path / "lf"
    folder.mkdir()
    Image.new("RGB", (1080, 2400), (240, 240, 240)).save(folder / "home.png")
    answer = ('<thinking>Tap the Sales folder.</thinking>\n<tool_call>{"name": "mobile_use", "arguments": '
              '{"action": "click", "coordinate": [500, 300]}}</tool_call>')
    record = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": answer}],
              "images": ["home.png"]}
    (folder / "data.json").write_text(json.dumps([record]))
    store = empty_store(tmp_path)
    import_source(store, folder / "data.json", ImportOptions("llamafactory", "norm1000"))
    (trajectory,) = store.trajectories()
    assert trajectory.task == "Open the Sales folder"
    assert validate_store(store) == []


# ------------------------------------------------------------------------------- coordinates


@pytest.mark.parametrize("space", ["norm1000", "norm999", "abs-resized", "abs-original"])
@pytest.mark.parametrize("size", [(1080, 2400), (1920, 1080), (720, 1600)])
def test_conversion_round_trips_within_one_pixel(space, size):
    geom = geometry(*size, ImageSettings(max_dim=768))
    rng = random.Random(7)
    for _ in range(200):
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        back = to_original(*from_original(x, y, space, geom), space, geom)
        assert abs(back[0] - x) < 1 and abs(back[1] - y) < 1
        rounded = [round(v) for v in from_original(x, y, space, geom)]
        rounded = [min(v, limit) for v, limit in zip(rounded, (geom.resized_width, geom.resized_height))] \
            if space == "abs-resized" else rounded
        back = to_original(*rounded, space, geom)
        error_x, error_y = quantization_error(space, geom)
        assert abs(back[0] - x) <= error_x + 1e-9 and abs(back[1] - y) <= error_y + 1e-9


# ------------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["mai-ui", "llamafactory", "swift"])
def test_export_then_import_gives_the_same_trajectories(tmp_path, store, fmt):
    summary = export_store(store, tmp_path / "out", fmt, ExportOptions(val_ratio=0.4, seed=3))
    assert summary["val"] > 0 and summary["corrections"] == 2
    again = empty_store(tmp_path, "again")
    result = import_source(again, tmp_path / "out", ImportOptions("auto", "norm1000"))
    assert result["corrections"] == 1
    assert snapshot(again) == snapshot(store)


def test_round_trip_without_metadata_is_exact_to_the_rounding(tmp_path, store):
    export_store(store, tmp_path / "out", "mai-ui", ExportOptions(coords="norm999"))
    bare = tmp_path / "out" / "bare.jsonl"
    with open(bare, "w") as handle:
        for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record["metadata"]["kind"] == "step":
                handle.write(json.dumps({"messages": record["messages"]}) + "\n")
    again = empty_store(tmp_path, "again")
    import_source(again, bare, ImportOptions("mai-ui", "norm999"))
    original = {t.task: store.steps(t.id) for t in store.trajectories()}
    geom = geometry(1080, 2400, ImageSettings())
    tolerance = quantization_error("norm999", geom)
    for trajectory in again.trajectories():
        for mine, theirs in zip(again.steps(trajectory.id), original[trajectory.task], strict=True):
            assert mine.thinking == theirs.thinking and mine.action["action"] == theirs.action["action"]
            for key in ("coordinate", "start_coordinate", "end_coordinate"):
                if key in theirs.action:
                    assert abs(mine.action[key][0] - theirs.action[key][0]) <= tolerance[0] + 1e-9
                    assert abs(mine.action[key][1] - theirs.action[key][1]) <= tolerance[1] + 1e-9


def test_llamafactory_export_obeys_the_format(tmp_path, store):
    summary = export_store(store, tmp_path / "lf", "llamafactory", ExportOptions(val_ratio=0.2, max_images=2))
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert set(info) == {"gui_agent_train", "gui_agent_val"}
    for entry in info.values():
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        records = [json.loads(line) for line in (tmp_path / "lf" / entry["file_name"]).read_text().splitlines()]
        assert records
        for record in records:
            text = "".join(m["content"] for m in record["messages"])
            assert text.count("<image>") == len(record["images"]) >= 1
            for image in record["images"]:
                assert not Path(image).is_absolute() and ".." not in Path(image).parts
                assert (tmp_path / "lf" / image).is_file()
            roles = [m["role"] for m in record["messages"]]
            assert roles[0] == "system" and roles[-1] == "assistant"
            assert all(role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles[1:]))
            assert all(isinstance(m["content"], str) and "loss" not in m for m in record["messages"])
            normalize_record(record, tmp_path / "lf")  # the project's reader takes it
    assert any(OMITTED_SCREENSHOT_TEXT in line for line in (tmp_path / "lf" / "train.jsonl").read_text().splitlines())
    assert summary["notes"] and "mask_history" in summary["notes"][0]


def test_native_export_is_what_the_shared_reader_reads(tmp_path, store):
    export_store(store, tmp_path / "out", "mai-ui", ExportOptions())
    records = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    correction = next(r for r in records if r["metadata"]["kind"] == "correction")
    sample = normalize_record(correction, tmp_path / "out")
    assert all(path.is_file() and (tmp_path / "out") in path.parents for path in sample.images)
    assert [m.get("loss") for m in sample.messages].count(False) == 1
    assert correction["metadata"]["source"] == "share_q3_report_with_alice"
    assert correction["metadata"]["screen_size"] == [1080, 2400]


def test_abs_resized_export_scales_every_point_including_drag_ends(tmp_path, encoder):
    store = empty_store(tmp_path)
    import_source(store, folder_source(tmp_path, good_steps()), ImportOptions("folder", "norm1000"))
    samples = store_samples(store, ExportOptions(coords="abs-resized", max_dim=1024, encoder=encoder))
    geom = encoder.with_options(max_dim=1024).geometry(1080, 2400)
    drag = json.loads(samples[2]["messages"][-1]["content"].split("<tool_call>")[1].split("</tool_call>")[0])
    start, end = drag["arguments"]["start_coordinate"], drag["arguments"]["end_coordinate"]
    assert start == [round(108 * geom.scale_x), round(480 * geom.scale_y)]
    assert end == [round(972 * geom.scale_x), round(2280 * geom.scale_y)]
    assert samples[2]["metadata"]["action_abs"]["end_coordinate"] == pytest.approx([972, 2280])


def test_sample_counts_match_the_export(store):
    samples = store_samples(store)
    corrections = sum(1 for s in samples if s["metadata"]["kind"] == "correction")
    assert store.sample_counts() == (len(samples) - corrections, corrections) == (22, 2)


def test_split_is_by_trajectory_and_follows_the_seed():
    ids = [f"t{i}" for i in range(10)]
    first, again = split_by_trajectory(ids, 0.2, 5), split_by_trajectory(ids, 0.2, 5)
    assert first == again and len(first["val"]) == 2 and not set(first["val"]) & set(first["train"])
    assert split_by_trajectory(ids, 0.2, 6) != first
    assert split_by_trajectory(ids, 0.0, 5)["val"] == []


def test_export_refuses_invalid_data_and_a_used_folder(tmp_path, store):
    session = AnnotatorSession(annotator="alice")
    session.open(store, "open_sales_folder", 1)
    session.set_fields(store, thinking="I will click the button.")
    with pytest.raises(ValueError, match="open_sales_folder step 2: the thinking is empty or a placeholder"):
        export_store(store, tmp_path / "out", "mai-ui")
    session.set_status(store, "rejected")  # rejected records leave the export and its checks
    export_store(store, tmp_path / "out", "mai-ui")
    with pytest.raises(ValueError, match="not empty"):
        export_store(store, tmp_path / "out", "mai-ui")


# ------------------------------------------------------------------------------- authoring session


def test_session_clicks_corrections_and_proposals(tmp_path, store):
    session = AnnotatorSession(annotator="alice")
    session.open(store, "open_sales_folder", 1)
    session.click(store, 300, 560)
    assert store.steps("open_sales_folder")[1].action == {"action": "click", "coordinate": [300.0, 560.0]}
    notes, warnings = session.mark_wrong(store, "neighbour")
    assert not warnings and session.editing == WRONG
    correction = store.corrections("open_sales_folder")[0]
    assert correction.wrong_action["coordinate"] != [300.0, 560.0]
    assert len(correction.recovery) == 2 and correction.recovery[0].action["button"] == "back"
    view = session.view(store, tmp_path / "cache")
    assert view.image.is_file() and "norm1000" in view.coordinate_text
    # recovery 1 has no screenshot until one is given: clicks are refused and the view asks for it
    session.choose_editing("recovery 1")
    assert correction.recovery[0].image is None
    notes, warnings = session.click(store, 500, 1500)
    assert warnings == ["Recovery 1 has no screenshot yet: upload, paste or pick the screen after the error."]
    assert session.view(store, tmp_path / "cache").needs_screenshot == warnings[0]
    assert session.set_recovery_image(store, store.steps("open_sales_folder")[2].image) == []
    assert session.view(store, tmp_path / "cache").needs_screenshot is None
    # swipe takes two clicks: start, then end gives the direction
    session.set_kind(store, "swipe")
    session.click(store, 500, 1500)
    session.click(store, 520, 600)
    assert store.correction(correction.id).recovery[0].action == {"action": "swipe", "direction": "up",
                                                                  "coordinate": [500.0, 1500.0]}
    for proposal in ("wrong type", "wrong app"):
        session.open(store, "share_q3_report_with_alice", 0)
        session.mark_wrong(store, proposal)
    kinds = [c.wrong_action["action"] for c in store.corrections("share_q3_report_with_alice") if c.position == 0]
    assert kinds == ["long_press", "click"]  # home screen: the wrong app is another app icon


def test_text_typed_on_a_step_is_saved_there_even_after_moving_on(store):
    session = AnnotatorSession(annotator="alice")
    session.open(store, "create_archive_folder", 1)
    key = session.shown_key
    session.move(store, +1)  # the Next click was handled before the thinking field's blur
    with session.showing(key):
        session.set_fields(store, thinking="Typed on step two, while step two was on screen.")
    steps = store.steps("create_archive_folder")
    assert steps[1].thinking.startswith("Typed on step two") and not steps[2].thinking.startswith("Typed")
    assert session.position == 2


def test_session_shows_a_stale_edit_and_keeps_the_other_work(store, tmp_path):
    alice, bob = AnnotatorSession(annotator="alice"), AnnotatorSession(annotator="bob")
    for session in (alice, bob):
        session.open(store, "search_for_sales", 1)
        session.view(store, tmp_path / "cache")
    assert bob.set_fields(store, thinking="Bob's careful thinking about the search field and the query.") == []
    warnings = alice.set_fields(store, thinking="Alice's text")
    assert warnings and "bob saved this step" in warnings[0]
    assert store.steps("search_for_sales")[1].thinking.startswith("Bob's")
    assert alice.set_fields(store, thinking="Alice, after seeing Bob's version of it.") == []


def test_uploaded_zips_unpack_inside_their_folder_only(tmp_path):
    import zipfile

    from ui.authoring import unpack

    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("data/trajectories.json", "[]")
    assert unpack(good, tmp_path / "a") == tmp_path / "a" / "data"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.json", "[]")
    with pytest.raises(ImportRefused, match="outside the folder"):
        unpack(evil, tmp_path / "b")
    assert not (tmp_path / "outside.json").exists()


# ------------------------------------------------------------------------------- CLI


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "authoring", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_import_validate_export(tmp_path):
    db = tmp_path / "cli" / "annotations.sqlite"
    steps = good_steps()
    steps[0]["thinking"] = "I will click the button."  # the seed's bad example
    done = cli("import", folder_source(tmp_path, steps), "--coords", "norm1000", "--store", db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 3
    checked = cli("validate", "--store", db, "--json")
    assert checked.returncode == 1 and json.loads(checked.stdout)["problems"][0]["record"] == "t1 step 1"
    refused = cli("export", "--format", "llamafactory", "--out", tmp_path / "x", "--store", db)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "validation problem" in refused.stderr
    Store(db).edit("step", Store(db).steps("t1")[0].id, {"status": "rejected"}, 1,
                   __import__("authoring.store", fromlist=["Editor"]).Editor("t", "t"))
    exported = cli("export", "--format", "swift", "--coords", "abs-resized", "--max-dim", "1024", "--val-ratio", "0",
                   "--out", tmp_path / "x", "--store", db)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["samples"] == 2
    bad = cli("import", tmp_path / "nowhere", "--coords", "norm1000", "--store", db)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    usage = cli("export", "--format", "mai-ui", "--coords", "abs-resized", "--out", tmp_path / "y", "--store", db)
    assert usage.returncode == 2 and "--max-dim" in usage.stderr


def test_abs_resized_follows_the_chosen_encoder_not_a_default(tmp_path, encoder):
    """Under another pixel budget the resized size changes, and the export's coordinates with it."""
    store = empty_store(tmp_path)
    import_source(store, folder_source(tmp_path, good_steps()), ImportOptions("folder", "norm1000"))
    small = encoder.with_options(max_pixels=28 * 28 * 576)
    samples = store_samples(store, ExportOptions(coords="abs-resized", encoder=small))
    geom = small.geometry(1080, 2400)
    assert (geom.resized_width, geom.resized_height) == (448, 992)
    drag = json.loads(samples[2]["messages"][-1]["content"].split("<tool_call>")[1].split("</tool_call>")[0])
    assert drag["arguments"]["end_coordinate"] == [round(972 * geom.scale_x), round(2280 * geom.scale_y)]


def test_abs_resized_without_an_encoder_is_refused(tmp_path):
    store = empty_store(tmp_path)
    import_source(store, folder_source(tmp_path, good_steps()), ImportOptions("folder", "norm1000"))
    with pytest.raises(ValueError, match="resized size"):
        store_samples(store, ExportOptions(coords="abs-resized", max_dim=1024))


def test_peer_exports_carry_the_recipe_options_and_the_pad_difference(tmp_path, encoder):
    """LLaMA-Factory gets a train YAML, ms-swift a command; notes give the nearest peer setting per image size."""
    import yaml

    store = empty_store(tmp_path)
    import_source(store, folder_source(tmp_path, good_steps()), ImportOptions("folder", "norm1000"))
    working = encoder.with_options(max_dim=1024)  # 1080×2400 → 448 pads
    summary = export_store(store, tmp_path / "lf", "llamafactory", ExportOptions(encoder=working))
    config = yaml.safe_load((tmp_path / "lf" / "train_lora.yaml").read_text())
    assert config["template"] == "qwen3_vl_nothink" and config["mask_history"] is True
    assert config["image_max_pixels"] == 589824 and config["cutoff_len"] == 2048
    assert config["dataset"] == "gui_agent_train"
    note = next(n for n in summary["notes"] if n.startswith("1080×2400"))
    assert "448 image pads" in note and "576 under" in note and "(+128 per image)" in note
    assert "image_max_pixels=457728 comes closest: 448 pads" in note

    lf = working.with_recipe("llamafactory", {"cutoff_len": "4096", "image_max_pixels": "457728"})
    export_store(store, tmp_path / "lf2", "llamafactory", ExportOptions(encoder=lf))
    config = yaml.safe_load((tmp_path / "lf2" / "train_lora.yaml").read_text())
    assert config["cutoff_len"] == 4096 and config["image_max_pixels"] == 457728

    summary = export_store(store, tmp_path / "sw", "swift", ExportOptions(encoder=working))
    command = (tmp_path / "sw" / "swift_sft.sh").read_text()
    assert command.startswith("IMAGE_MIN_TOKEN_NUM=4 IMAGE_MAX_TOKEN_NUM=16384 swift sft")
    assert "--loss_scale last_round" in command and "--dataset train.jsonl" in command
    assert any("IMAGE_MAX_TOKEN_NUM=" in n and "comes closest: 448 pads" in n for n in summary["notes"])
