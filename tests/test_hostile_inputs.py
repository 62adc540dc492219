"""Hostile files (issue #10): zip bombs, zip-slip, temp folders, deep and huge JSON, links out of the folder, and
coordinates no screen has. Every refusal is one sentence; nothing is unpacked or followed first."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from lora_core.data.archives import ArchiveRefused, check_archive, extract_archive
from lora_core.data.datasets import extract_dataset_zip, read_dataset
from lora_core.data.samples import Sample, SampleFormatError, load_sample_file

ROOT = Path(__file__).resolve().parent.parent
DEEP = "[" * 100_000
GOOD_RECORD = {"messages": [{"role": "user", "content": "Open the settings."},
                            {"role": "assistant", "content": "Done."}]}


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """One member of 200 MiB of zeros: about 200 KiB on disk, a ratio near 1000:1. Written in chunks."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data/mllm.json", json.dumps([GOOD_RECORD]))
        with archive.open("data/zeros.jsonl", "w", force_zip64=True) as member:
            chunk = bytes(1024**2)
            for _ in range(200):
                member.write(chunk)
    assert path.stat().st_size < 1024**2
    return path


def patch_central_size(path: Path, member: str, size: int) -> None:
    """Make the central directory declare `size` uncompressed bytes for `member` (a lying header)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02")  # the first central directory entry
    while at != -1:
        name_length = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + name_length] == name:
            data[at + 24:at + 28] = size.to_bytes(4, "little")
            break
        at = data.find(b"PK\x01\x02", at + 4)
    else:
        raise AssertionError(f"{member} not in {path}")
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- archives: refused before extraction


def test_zip_bomb_is_refused_before_anything_is_unpacked(bomb, tmp_path):
    from authoring.importer import ImportRefused
    from ui.authoring import unpack

    with zipfile.ZipFile(bomb) as archive, pytest.raises(ArchiveRefused, match=r"compressed 1,0\d\d:1") as caught:
        check_archive(archive, tmp_path / "checked")
    assert "100:1" in str(caught.value) and "LORA_MAX_COMPRESSION_RATIO" in str(caught.value)
    assert "zeros.jsonl" in str(caught.value)
    # the Inspector's upload: the destination is never created
    inspector = tmp_path / "inspector"
    with pytest.raises(SampleFormatError, match="compressed .*100:1"):
        extract_dataset_zip(bomb, inspector)
    assert not inspector.exists()
    # the Authoring import: its (empty) work folder stays empty
    workdir = tmp_path / "authoring"
    workdir.mkdir()
    with pytest.raises(ImportRefused, match="compressed .*100:1"):
        unpack(bomb, workdir)
    assert list(workdir.iterdir()) == []
    assert folder_size(tmp_path) == 0  # nothing of the 200 MiB reached the disk


def test_total_size_limit_is_checked_from_the_headers(tmp_path, monkeypatch):
    small = write_zip(tmp_path / "small.zip", {"a.json": b"[]", "b.bin": os.urandom(300_000)}, zipfile.ZIP_STORED)
    with pytest.raises(ArchiveRefused, match=r"would unpack to 293\.0 KiB, more than the limit of 100\.0 KiB "
                                             r"\(\$LORA_MAX_ARCHIVE_BYTES\)"):
        extract_archive(small, tmp_path / "out", max_bytes=100 * 1024)
    monkeypatch.setenv("LORA_MAX_ARCHIVE_BYTES", "1000")
    with pytest.raises(SampleFormatError, match="limit of 1,000 bytes"):
        extract_dataset_zip(small, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    monkeypatch.delenv("LORA_MAX_ARCHIVE_BYTES")
    # the default is 1 GiB (it was 4 GiB): a header declaring 2 GiB is refused without reading a byte
    huge = write_zip(tmp_path / "huge.zip", {"a.json": b"[]", "big.bin": b"x" * 10}, zipfile.ZIP_STORED)
    patch_central_size(huge, "big.bin", 2 * 1024**3)
    with pytest.raises(SampleFormatError, match=r"would unpack to 2\.0 GiB, more than the limit of 1\.0 GiB"):
        extract_dataset_zip(huge, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_member_larger_than_its_header_stops_the_extraction_and_is_removed(tmp_path):
    liar = write_zip(tmp_path / "liar.zip", {"first.json": b"[]", "second.bin": b"y" * 5000}, zipfile.ZIP_STORED)
    patch_central_size(liar, "second.bin", 10)
    with pytest.raises(SampleFormatError, match="could not be unpacked|more than the"):
        extract_dataset_zip(liar, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # first.json, already written, is gone too


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    from authoring.importer import ImportRefused
    from ui.authoring import unpack

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.json", json.dumps([GOOD_RECORD]))
        for number in range(20_000):
            archive.writestr(f"f/{number}.txt", b"")
    with pytest.raises(SampleFormatError, match=r"holds 20,001 entries, more than the limit of 20,000 "
                                                r"\(\$LORA_MAX_ARCHIVE_MEMBERS\)"):
        extract_dataset_zip(many, tmp_path / "inspector")
    assert not (tmp_path / "inspector").exists()
    workdir = tmp_path / "authoring"
    workdir.mkdir()
    with pytest.raises(ImportRefused, match="20,001 entries"):
        unpack(many, workdir)
    assert list(workdir.iterdir()) == []
    five = write_zip(tmp_path / "five.zip", {f"{n}.json": b"[]" for n in range(5)})
    monkeypatch.setenv("LORA_MAX_ARCHIVE_MEMBERS", "3")
    with pytest.raises(ArchiveRefused, match="limit of 3 "):
        extract_archive(five, tmp_path / "five")
    assert len(extract_archive(five, tmp_path / "five", max_members=5)) == 5  # an argument wins over the variable


def test_zip_slip_members_are_refused_on_both_paths(tmp_path):
    from authoring.importer import ImportRefused
    from ui.authoring import unpack

    for number, member in enumerate(["../escape.json", "/etc/escape.json", "C:/escape.json", "a/../../escape.json",
                                     "..\\escape.json", "C:\\Users\\escape.json"]):
        evil = write_zip(tmp_path / f"evil{number}.zip", {"data.json": b"[]", member: b"[]"})
        out = tmp_path / "inside" / f"out{number}"
        with pytest.raises(SampleFormatError, match="points outside its folder"):
            extract_dataset_zip(evil, out)
        workdir = tmp_path / "inside" / f"work{number}"
        workdir.mkdir(parents=True)
        with pytest.raises(ImportRefused, match="outside the folder"):
            unpack(evil, workdir)
        assert [p.name for p in tmp_path.rglob("*") if "escape" in p.name] == [], member
        assert not out.exists() and list(workdir.iterdir()) == [], member
    # a zip written on Windows (backslash separators) unpacks into its folders
    windows = write_zip(tmp_path / "windows.zip", {"data\\data.json": json.dumps([GOOD_RECORD]).encode()})
    assert extract_dataset_zip(windows, tmp_path / "win") == [tmp_path.resolve() / "win" / "data" / "data.json"]


def test_link_members_are_refused(tmp_path):
    from authoring.importer import ImportRefused
    from ui.authoring import unpack

    evil = tmp_path / "link.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("data.json", json.dumps([GOOD_RECORD]))
        link = zipfile.ZipInfo("images/screen.png")
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(SampleFormatError, match="is a link"):
        extract_dataset_zip(evil, tmp_path / "out")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(ImportRefused, match="is a link"):
        unpack(evil, workdir)
    assert not (tmp_path / "out").exists() and list(workdir.iterdir()) == []


# ---------------------------------------------------------------- the Inspector's temp folders


def test_inspector_temp_folders_go_when_replaced_and_when_uploads_fail(tmp_path, monkeypatch, bomb):
    from ui import inspector

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    first = write_zip(tmp_path / "first.zip", {"one/data.json": json.dumps([GOOD_RECORD]).encode()})
    second = write_zip(tmp_path / "second.zip", {"two/data.jsonl": json.dumps(GOOD_RECORD).encode()})

    source = inspector.replace_source(None, inspector.file_source, str(first))
    old_folder = source.folder
    assert old_folder is not None and old_folder.parent == temp and old_folder.is_dir()
    assert len(source.dataset) == 1
    replaced = inspector.replace_source(source, inspector.file_source, str(second))
    assert not old_folder.exists() and source.folder is None
    assert [p.name for p in temp.iterdir()] == [replaced.folder.name]
    # a failing upload leaves no folder behind and keeps the current source (and its folder)
    for bad in (bomb, write_zip(tmp_path / "empty.zip", {"readme.txt": b"no dataset"})):
        with pytest.raises(SampleFormatError):
            inspector.replace_source(replaced, inspector.file_source, str(bad))
    assert [p.name for p in temp.iterdir()] == [replaced.folder.name]
    # a source that is not an upload (the paste box) replaces it too
    pasted = inspector.replace_source(replaced, inspector.pasted_source, SimpleNamespace(workspace=tmp_path),
                                      json.dumps(GOOD_RECORD))
    assert pasted.folder is None and list(temp.iterdir()) == []
    # the app's exit removes whatever is left (atexit)
    left = inspector.file_source(str(first))
    assert left.folder in inspector.TEMP_FOLDERS
    inspector.remove_temp_folders()
    assert not left.folder.exists() and not inspector.TEMP_FOLDERS


def test_inspector_temp_folders_are_removed_at_exit(tmp_path):
    upload = write_zip(tmp_path / "up.zip", {"data.json": json.dumps([GOOD_RECORD]).encode()})
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = f"from ui.inspector import file_source; print(file_source({str(upload)!r}).folder)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == temp and not folder.exists() and list(temp.iterdir()) == []


# ---------------------------------------------------------------- deep and huge JSON


def cli(module: str, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def one_line_refusal(done, *phrases):
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def test_deeply_nested_json_through_the_clis(tmp_path):
    folder = tmp_path / "import"
    folder.mkdir()
    (folder / "trajectories.json").write_text(DEEP)
    line = one_line_refusal(cli("authoring", "import", folder, "--coords", "norm1000", "--store", tmp_path / "s.sqlite"),
                            "trajectories.json is nested 100,000 levels deep", "at most 100 levels")
    assert line.startswith("error: ")
    (folder / "trajectories.json").write_text(json.dumps({"steps": [GOOD_RECORD]}) + "\n")
    (folder / "steps.jsonl").write_text(json.dumps({"a": 1}) + "\n" + "[" * 500 + "]" * 500 + "\n")
    one_line_refusal(cli("authoring", "import", folder, "--coords", "norm1000", "--store", tmp_path / "s.sqlite"),
                     "steps.jsonl line 2 is nested 500 levels deep")
    (tmp_path / "deep.json").write_text(DEEP)
    one_line_refusal(cli("lora_core", "mask", tmp_path / "deep.json", "--json"), "deep.json is nested 100,000 levels")
    one_line_refusal(cli("lora_core", "audit", tmp_path / "deep.json", "--json"), "deep.json is nested 100,000 levels")


def test_deeply_nested_json_in_the_inspector(tmp_path):
    from ui.inspector import file_source, pasted_source

    ctx = SimpleNamespace(workspace=tmp_path)
    with pytest.raises(ValueError, match="pasted JSON is nested 100,000 levels deep; at most 100 levels"):
        pasted_source(ctx, DEEP)
    with pytest.raises(ValueError, match="pasted JSON is nested 101 levels deep"):
        pasted_source(ctx, "[" * 101 + "]" * 101)
    # JSONL: the deep line is unreadable, the others are read
    source = pasted_source(ctx, json.dumps(GOOD_RECORD) + "\n" + DEEP + "\n" + json.dumps(GOOD_RECORD))
    assert [entry.error is None for entry in source.dataset.entries] == [True, False, True]
    assert "nested 100,000 levels deep" in source.dataset.entries[1].error
    (tmp_path / "deep.json").write_text(DEEP)
    with pytest.raises(SampleFormatError, match="deep.json is nested 100,000 levels deep"):
        file_source(str(tmp_path / "deep.json"))
    with pytest.raises(SampleFormatError, match="deep.json is nested"):
        load_sample_file(tmp_path / "deep.json")


def test_huge_json_gets_a_sentence(tmp_path):
    from authoring.importer import ImportRefused, discover
    from ui.inspector import pasted_source

    huge = json.dumps({"messages": [{"role": "user", "content": "a" * 10_000_000},
                                    {"role": "assistant", "content": "Done."}]})
    with pytest.raises(ValueError, match=r"pasted JSON is 9\.5 MB, more than the limit of 2\.0 MB "
                                         r"\(\$LORA_MAX_PASTE_BYTES\); upload it as a file instead"):
        pasted_source(SimpleNamespace(workspace=tmp_path), huge)
    (tmp_path / "huge.json").write_text(huge)
    message = r"huge.json holds a text of 10,000,000 characters at messages\[0\].content; at most 1,000,000"
    with pytest.raises(SampleFormatError, match=message):
        read_dataset(tmp_path / "huge.json")
    with pytest.raises(SampleFormatError, match=message):
        load_sample_file(tmp_path / "huge.json")
    with pytest.raises(ImportRefused, match=message):
        discover(tmp_path / "huge.json", "auto")
    one_line_refusal(cli("lora_core", "mask", tmp_path / "huge.json", "--json"), "10,000,000 characters")
    # an inline data: image may be long
    inline = {"messages": [{"role": "user", "content": [{"type": "image", "image": "data:image/png;base64," + "A" * 1_500_000}]},
                           {"role": "assistant", "content": "Done."}]}
    (tmp_path / "inline.json").write_text(json.dumps(inline))
    assert read_dataset(tmp_path / "inline.json").sample(0).images == [None]


def test_files_that_are_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps(GOOD_RECORD).encode() + b"\n" + '{"messages": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(SampleFormatError, match=r"latin.jsonl is not UTF-8 text \(line 2 has the byte 0xe9\)"):
        read_dataset(path)


# ---------------------------------------------------------------- links out of the folder


def test_a_dataset_that_links_out_of_its_folder_is_refused(tmp_path):
    from authoring.importer import ImportRefused, discover

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps([GOOD_RECORD]))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "data.json").symlink_to(outside / "secret.json")
    with pytest.raises(SampleFormatError, match=r"data.json is a link to .*secret.json, outside its folder"):
        read_dataset(folder / "data.json")
    with pytest.raises(SampleFormatError, match="outside its folder"):
        load_sample_file(folder / "data.json")
    with pytest.raises(ImportRefused, match=r"data.json is a link to .*secret.json, outside its folder"):
        discover(folder, "auto")
    with pytest.raises(ImportRefused, match="outside its folder"):
        discover(folder / "data.json", "auto")
    # a link that stays inside the folder is read
    (folder / "data.json").unlink()
    (folder / "real.json").write_text(json.dumps([GOOD_RECORD]))
    (folder / "alias.json").symlink_to(folder / "real.json")
    assert len(read_dataset(folder / "alias.json")) == 1


# ---------------------------------------------------------------- coordinates no screen has


def answer(coordinate: str) -> str:
    return ('<thinking>The settings icon is at the top right of the screen.</thinking><tool_call>'
            '{"name": "mobile_use", "arguments": {"action": "click", "coordinate": ' + coordinate + '}}</tool_call>')


def test_parse_answer_reports_non_finite_and_negative_coordinates():
    from lora_core.data.agent import parse_answer

    assert parse_answer(answer("[540, 1200]")).valid
    for point, phrase in (("[NaN, -5]", "not a finite point"), ("[Infinity, 3]", "not a finite point"),
                          ("[10, -5]", "negative"), ("[-0.5, 3]", "negative")):
        parsed = parse_answer(answer(point))
        assert not parsed.valid and any(phrase in p and point in p for p in parsed.problems), parsed.problems
    deep = parse_answer("<thinking>x</thinking><tool_call>" + DEEP + "</tool_call>")
    assert not deep.valid and "nested too deeply" in deep.problems[0]


def test_pitfalls_flag_nan_and_negative_coordinates(encoder):
    from lora_core.analysis.masking import ERROR, analyse_sample

    def pitfalls(point):
        sample = Sample([{"role": "user", "content": "Open the settings."},
                         {"role": "assistant", "content": answer(point)}], [], "native")
        return [f for f in analyse_sample(sample, encoder).pitfalls if f.code == "bad_coordinate"]

    found = pitfalls("[NaN, -5]")
    assert len(found) == 1 and found[0].level == ERROR
    assert "Message 2 (assistant)" in found[0].text and "[NaN, -5]" in found[0].text
    negative = pitfalls("[10, -5]")
    assert len(negative) == 1 and negative[0].level == ERROR and "[10, -5]" in negative[0].text
    assert pitfalls("[540, 1200]") == []
