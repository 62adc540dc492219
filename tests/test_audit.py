"""The dataset audit: counts on a crafted dataset, in process and through `python -m lora_core audit`."""
import json
import subprocess
import sys

import pytest

from lora_core.analysis.audit import audit_dataset
from lora_core.data.datasets import read_dataset
from lora_core.analysis.masking import DEFAULT_MAX_LENGTH, analyse_sample
from tests.conftest import PEER_DATA, ROOT
from tests.images import plain_image

MAX_LENGTH = 200
MLLM_DEMO = PEER_DATA / "llamafactory" / "mllm_demo.json"


def words(count: int) -> str:
    return " ".join(f"word{n}" for n in range(count))


def record(*turns, images=None):
    result = {"messages": [{"role": role, "content": content} for role, content in turns]}
    if images is not None:
        result["images"] = images
    return result


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """Eight records, each with a known fate at max_length 200 and max side 1024 (448 pads per screenshot)."""
    folder = tmp_path_factory.mktemp("crafted")
    plain_image(folder / "screen.png", 1080, 2400)
    fits = record(("user", "Open the app"), ("assistant", "done"))
    lines = [
        json.dumps(fits),  # 1: fits
        json.dumps(record(("user", "Count"), ("assistant", words(300)))),  # 2: target cut in part, too long alone
        json.dumps(record(("user", "<image>Tap it"), ("assistant", "ok"), images=["screen.png"])),  # 3: cut in pads
        json.dumps(record(("user", "Go"), ("assistant", "first step"), ("user", words(300)),
                          ("assistant", "final"))),  # 4: target beyond the cut: a history answer trains instead
        json.dumps(record(("system", "s"), ("user", "no answer here"))),  # 5: nothing to train
        json.dumps(fits),  # 6: a duplicate of 1
        '{"messages": [broken',  # 7: not JSON
        json.dumps(record(("user", "<image>x"), ("assistant", "y"), images=["missing.png"])),  # 8: missing image
    ]
    path = folder / "crafted.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model(encoder):
    """The native encoder at max side 1024 under a label mode and max_length (the seed's 6200 by default)."""

    def under(mode="last", max_length=DEFAULT_MAX_LENGTH):
        return encoder.with_options(mode=mode, max_length=max_length, max_dim=1024)

    return under


EXPECTED_TOTALS = {"samples": 8, "read": 6, "errors": 2, "distinct": 5, "zero_trained": 3, "truncated": 3,
                   "truncated_target": 3, "cut_inside_image": 1, "trains_history_instead": 1, "over_max_length": 3}


def test_audit_counts_on_a_crafted_dataset(crafted, model):
    calls = []
    report = audit_dataset(read_dataset(crafted), model(mode="last", max_length=MAX_LENGTH),
                           progress=lambda done, total: calls.append((done, total)))
    assert {key: report.totals[key] for key in EXPECTED_TOTALS} == EXPECTED_TOTALS
    assert calls[-1] == (8, 8) and len(calls) == 8
    rows = {row.number: row for row in report.rows}
    assert rows[2].truncated_target and rows[2].zero_trained and "answer_too_long" in rows[2].pitfalls
    assert rows[3].cut_inside_image == 0 and rows[3].zero_trained
    assert rows[4].trains_history_instead and rows[4].trained_tokens > 0
    assert rows[5].zero_trained and not rows[5].truncated and "no_assistant_turn" in rows[5].pitfalls
    assert rows[6].trained_tokens == rows[1].trained_tokens and not rows[6].has_problem
    assert "line 7" in rows[7].error and "not valid JSON" in rows[7].error
    assert "missing.png does not exist" in rows[8].error
    assert [row.number for row in report.problem_rows] == [2, 3, 4, 5, 7, 8]
    assert report.totals["pitfalls"]["last_message_user"] == 1


def test_audit_rows_agree_with_the_inspector(crafted, model):
    dataset = read_dataset(crafted)
    report = audit_dataset(dataset, model(mode="all", max_length=MAX_LENGTH))
    for index in (0, 1, 2, 3):
        analysis = analyse_sample(dataset.sample(index), model(mode="all", max_length=MAX_LENGTH))
        row = report.rows[index]
        assert (row.length, row.trained_tokens, row.truncated_target) == (
            len(analysis.ids), analysis.trained_tokens, analysis.truncated_target)


def test_image_tokens_per_setting_come_from_geometry(crafted, model):
    report = audit_dataset(read_dataset(crafted), model(max_length=MAX_LENGTH))
    by_key = {s["key"]: s for s in report.by_setting}
    # one 1080×2400 screenshot among the readable samples: 448 pads at 1024, 112 at 520, 2550 at the model default
    assert by_key["current"]["image_tokens_total"] == 448
    assert by_key["max520"]["image_tokens_total"] == 112
    assert by_key["model"]["image_tokens_total"] == 2550
    row = report.rows[2]
    assert row.lengths_by_setting["max520"] == row.length - 448 + 112


def test_a_duplicate_row_copies_every_result():
    from lora_core.analysis.audit import RESULT_FIELDS, AuditRow, copy_results

    source = AuditRow(1, "line 1", None, image_tokens=448, length=300, kept_length=200, trained_tokens=0,
                      target_tokens=7, truncated=True, dropped=True, truncated_target=True, zero_trained=True,
                      cut_inside_image=0, trains_history_instead=True, pitfalls=["answer_too_long"],
                      problems=["a sentence"], lengths_by_setting={"max520": 10}, image_tokens_by_setting={"max520": 2})
    row = AuditRow(2, "line 2", None)
    copy_results(source, row)
    assert {name: getattr(row, name) for name in RESULT_FIELDS} == {name: getattr(source, name) for name in RESULT_FIELDS}
    assert row.dropped and row.pitfalls == source.pitfalls and row.problems == source.problems
    assert row.lengths_by_setting == source.lengths_by_setting and row.lengths_by_setting is not source.lengths_by_setting
    assert (row.number, row.where) == (2, "line 2")


def test_mllm_demo_audits(model):
    report = audit_dataset(read_dataset(MLLM_DEMO), model(mode="all"))
    assert report.totals["read"] == 6 and report.totals["errors"] == 0 and report.totals["zero_trained"] == 0
    assert report.form == "JSON list"


# ---------------------------------------------------------------- CLI


def run_cli(*args, workspace):
    command = [sys.executable, "-m", "lora_core", *args, "--workspace", str(workspace)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_audit_json(crafted, workspace, embedded_path):
    result = run_cli("audit", str(crafted), "--max-length", str(MAX_LENGTH), "--max-dim", "1024", "--json",
                     workspace=workspace)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {key: data["totals"][key] for key in EXPECTED_TOTALS} == EXPECTED_TOTALS
    assert data["form"] == "JSONL" and data["mode"] == "last" and data["max_length"] == MAX_LENGTH
    assert len(data["rows"]) == 8 and data["rows"][2]["cut_inside_image"] == 0


def test_cli_audit_mllm_demo_and_mode_all(workspace, embedded_path):
    last = json.loads(run_cli("audit", str(MLLM_DEMO), "--json", workspace=workspace).stdout)
    every = json.loads(run_cli("audit", str(MLLM_DEMO), "--mode", "all", "--json", workspace=workspace).stdout)
    assert last["totals"]["read"] == every["totals"]["read"] == 6
    assert every["totals"]["trained_tokens"]["total"] > last["totals"]["trained_tokens"]["total"] > 0
    assert last["max_length"] == 6200


def test_cli_audit_mai_ui_placeholder_size(workspace, embedded_path):
    path = PEER_DATA / "mai-ui" / "messages" / "test_build_messages_with_single_history.json"
    small = json.loads(run_cli("audit", str(path), "--placeholder-size", "540x1200", "--json", workspace=workspace).stdout)
    large = json.loads(run_cli("audit", str(path), "--json", workspace=workspace).stdout)
    assert small["totals"]["placeholder_images"] == large["totals"]["placeholder_images"] > 0
    assert small["totals"]["image_tokens"]["total"] < large["totals"]["image_tokens"]["total"]
    assert large["totals"]["pitfalls"]["last_message_user"] == 1


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["audit", str(d / "absent.jsonl"), "--json"], "does not exist"),
    (lambda d: ["audit", str(d / "broken.json"), "--json"], "not valid JSON: Expecting"),
    (lambda d: ["audit", str(d / "bad_only.jsonl"), "--json"], "No sample of bad_only.jsonl could be read"),
    (lambda d: ["audit", str(d / "broken.json"), "--mode", "some"], "invalid choice"),
    (lambda d: ["audit", str(d / "broken.json"), "--placeholder-size", "big"], "expected WIDTHxHEIGHT"),
    (lambda d: ["audit", str(d / "broken.json"), "--max-length", "0"], "expected a positive number"),
])
def test_cli_audit_errors_are_one_line(tmp_path, workspace, embedded_path, make_args, message):
    (tmp_path / "broken.json").write_text('[\n{"messages": [}\n]')
    (tmp_path / "bad_only.jsonl").write_text('{"messages": []}\n{"messages": [{"role": "robot"}]}\n')
    result = run_cli(*make_args(tmp_path), workspace=workspace)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
