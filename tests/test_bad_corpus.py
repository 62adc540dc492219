"""The bad-input corpus (tests/data/bad/, made by scripts/make_bad_corpus.py, listed in its README.md) through every
entry point: `python -m lora_core mask|audit FILE --json` and `python -m authoring import SRC` as subprocesses, and
the running app's HTTP API (`mask_inspect` with an upload or pasted text, `lab_report` with an image) in a private
app and in a demo-mode app.

A refusal is: exit status 2 (the CLIs), one line that names the input (its file or record) and says what is wrong,
no traceback, no absolute server path (temp folders, the workspace, the repository, site-packages), and nothing
changed: the store's row counts and the sorted file lists of the workspace and the input folders are the same
before and after. Where an entry point legitimately accepts a case, the test of that case asserts what the
entry point fixed instead, and its docstring says so.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORPUS = ROOT / "tests" / "data" / "bad"
SCRIPT = ROOT / "scripts" / "make_bad_corpus.py"
spec = importlib.util.spec_from_file_location("make_bad_corpus", SCRIPT)
corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(corpus)

GOOD = corpus.GOOD
# images every entry point refuses (from the header, or the processor's aspect limit): the words of the refusal
IMAGE_REFUSED = {
    "ratio_400.png": "aspect ratio 400:1",
    "aspect_201.png": "aspect ratio 201:1",
    "not_an_image.png": "not a readable image",
    "forged_50000.png": "decompression bomb",
}
# images the loader fixes (16-bit scaled, EXIF applied, real format detected, palette flattened): displayed size
IMAGE_FIXED = {
    "sixteen_bit.png": (96, 64),
    "exif_rotated.jpg": (80, 120),  # stored 120×80 with EXIF orientation 6
    "gif_named.png": (90, 160),
    "palette_transparent.png": (90, 160),
    "one_pixel.png": (1, 1),
}
TRUNCATED = "truncated.png"  # its header reads 64×64; its pixels do not decode
DAMAGED = "damaged: its header reads 64×64 but the pixels do not decode"
# JSON every reader refuses, with the words of the refusal (long_string and linked are made at test time)
JSON_REFUSED = {
    "not_utf8.json": "is not UTF-8 text (line 1",
    "invalid.json": "is not valid JSON",
    "deep.json": "is nested 20,003 levels deep",
    "nested_150.json": "is nested 153 levels deep",
    "escape_relative.json": "Image path '../../etc/passwd' points outside the dataset's folder",
    "escape_absolute.json": "Image path '/etc/passwd' points outside the dataset's folder",
    "long_string.json": "holds a text of 10,485,760 characters",
    "linked.json": "linked.json is a link to secret.json, outside its folder",
}
# answers no screen has: the import refuses them (words); the mask and audit count their tokens
COORDINATES = {
    "nan_coordinate.json": "'coordinate' [NaN, 500] is not a finite point",
    "out_of_range_coordinate.json": "Point (1500, 2000) is outside the norm1000 range",
    "negative_coordinate.json": "'coordinate' [-5, 300] is negative",
}
# archives the upload refuses before unpacking anything (too_many_members is made at test time)
ARCHIVES = {
    "zip_bomb.zip": "'images/padding.bin' in zip_bomb.zip is compressed 1,029:1",
    "zip_slip.zip": "'../../evil.txt' in zip_slip.zip points outside its folder",
    "zip_slip_absolute.zip": "'/etc/cron.d/evil' in zip_slip_absolute.zip points outside its folder",
    "zip_symlink.zip": "'images/link.png' in zip_symlink.zip is a link",
    "too_many_members.zip": "too_many_members.zip holds 20,001 entries",
}
MADE_AT_TEST_TIME = {"long_string.json", "linked.json", "too_many_members.zip"}


def wrapper(image: str) -> str:
    """The sample file that shows `image` to the CLIs and the upload: `<stem>_sample.json` beside it."""
    return f"{Path(image).stem}_sample.json"


# ---------------------------------------------------------------------------- the corpus itself


def test_the_corpus_is_what_the_script_writes_small_and_listed(tmp_path):
    """The committed files are the script's output byte for byte, under 2 MB together, each in the README."""
    corpus.write(tmp_path)
    written = sorted(path.name for path in tmp_path.iterdir())
    committed = sorted(path.name for path in CORPUS.iterdir() if path.name != "README.md")
    assert written == committed
    for name in written:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), f"{name}: run {SCRIPT.name}"
    assert sum((CORPUS / name).stat().st_size for name in committed) < 2 * 1024**2
    readme = (CORPUS / "README.md").read_text()
    cases = {GOOD, *IMAGE_REFUSED, *IMAGE_FIXED, TRUNCATED, *JSON_REFUSED, *COORDINATES, *ARCHIVES}
    assert set(written) | MADE_AT_TEST_TIME == cases
    for name in cases:
        assert f"`{name}`" in readme, name
    with zipfile.ZipFile(CORPUS / "zip_bomb.zip") as archive:
        member = archive.getinfo("images/padding.bin")
        assert member.file_size == 50 * 1024**2 and member.file_size / member.compress_size > 100


# ---------------------------------------------------------------------------- shared checks


def server_paths(*extra) -> list[str]:
    """Folders no message may show: temp folders, the repository, installed packages, plus `extra`."""
    found = {tempfile.gettempdir(), str(ROOT), sysconfig.get_paths()["purelib"], sys.prefix, *map(str, extra)}
    found |= {str(Path(path).resolve()) for path in list(found)}
    return sorted(path for path in found if path and path != "/")


def assert_refusal(message: str, names, words: str, forbidden) -> None:
    """One line naming one of `names`, saying `words`, with no traceback and no server folder in it."""
    text = message.strip()
    assert "Traceback" not in text and "File \"" not in text, text
    assert len(text.splitlines()) == 1, text
    assert any(name in text for name in names), (names, text)
    assert re.search(words, text) if words.startswith("(?") else words in text, (words, text)
    for folder in forbidden:
        assert folder not in text, (folder, text)


def file_lists(*folders) -> dict:
    return {str(folder): sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*")
                                if "gradio" not in path.relative_to(folder).parts)  # gradio's upload cache
            for folder in folders}


def row_counts(path: Path) -> dict:
    from authoring.store import Store

    store = Store(path)
    try:
        db = store.connection()
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in sorted(tables)}
    finally:
        store.close()


def run(module: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------- the cases on disk


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """A copy of the corpus, with a sample file beside each image and the cases made at test time."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "bad"
    shutil.copytree(CORPUS, folder)
    for image in [GOOD, *IMAGE_REFUSED, *IMAGE_FIXED, TRUNCATED]:
        (folder / wrapper(image)).write_text(corpus.sample_text(image=image))
    corpus.long_string_json(folder / "long_string.json")
    corpus.linked_dataset(folder, "linked.json")
    corpus.many_members_zip(folder / "too_many_members.zip")
    return folder


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory, embedded_path) -> Path:
    """The CLIs' --workspace: a copy of the embedded checkpoint (its file list is compared around every run)."""
    folder = tmp_path_factory.mktemp("cli-workspace")
    shutil.copytree(embedded_path, folder / "models" / embedded_path.name)
    return folder


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, cases) -> Path:
    """An annotation store holding one good import, for the refused imports to leave alone."""
    path = tmp_path_factory.mktemp("store") / "annotations.sqlite"
    result = run("authoring", "import", str(cases / wrapper(GOOD)), "--coords", "norm1000", "--store", str(path))
    assert result.returncode == 0, result.stderr
    assert row_counts(path)["steps"] == 1
    return path


CLI_REFUSALS = (
    [(name, name, words) for name, words in JSON_REFUSED.items()]
    + [(wrapper(image), image, words) for image, words in IMAGE_REFUSED.items()]
    + [(name, name, "(?:is not UTF-8 text|is not valid JSON)") for name in ARCHIVES]  # the CLIs take no archives
)


@pytest.mark.parametrize("command", ["mask", "audit", "import"])
@pytest.mark.parametrize("source, named, words", CLI_REFUSALS, ids=[case[0] for case in CLI_REFUSALS])
def test_the_clis_refuse_in_one_line_and_change_nothing(cases, cli_workspace, store_path, command, source, named,
                                                         words):
    """Exit status 2 and one line naming the file; the input folder, the workspace and the store are unchanged.
    An archive given to a CLI (none takes one) is refused as a file that is not UTF-8 JSON."""
    before = file_lists(cases.parent, cli_workspace, store_path.parent), row_counts(store_path)
    if command == "import":
        result = run("authoring", "import", str(cases / source), "--coords", "norm1000", "--store", str(store_path))
    else:
        result = run("lora_core", command, str(cases / source), "--json", "--workspace", str(cli_workspace))
    assert result.returncode == 2, (result.stdout[-500:], result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert_refusal(result.stderr, [named], words, server_paths(cases, cli_workspace, store_path.parent))
    assert (file_lists(cases.parent, cli_workspace, store_path.parent), row_counts(store_path)) == before


IMPORT_ONLY_REFUSALS = (
    [(wrapper(TRUNCATED), TRUNCATED, DAMAGED)]
    + [(name, name, words) for name, words in COORDINATES.items()]
)


@pytest.mark.parametrize("source, named, words", IMPORT_ONLY_REFUSALS, ids=[case[0] for case in IMPORT_ONLY_REFUSALS])
def test_the_import_refuses_what_the_mask_and_audit_count(cases, store_path, source, named, words):
    """The import decodes every screenshot and converts every coordinate: a truncated PNG, a NaN, an out-of-range
    and a negative coordinate are refused there (the mask and audit accept them: see the tests below)."""
    before = file_lists(cases.parent, store_path.parent), row_counts(store_path)
    result = run("authoring", "import", str(cases / source), "--coords", "norm1000", "--store", str(store_path))
    assert result.returncode == 2, result.stderr
    assert_refusal(result.stderr, [named], words, server_paths(cases, store_path.parent))
    assert (file_lists(cases.parent, store_path.parent), row_counts(store_path)) == before


def test_an_import_folder_with_a_link_out_of_it_is_refused(cases, store_path, tmp_path):
    """A folder import reads every JSON in the folder: a dataset JSON that links out of it refuses the import."""
    folder = tmp_path / "source"
    folder.mkdir()
    shutil.copy(cases / GOOD, folder)
    (folder / "good.json").write_text(corpus.sample_text())
    corpus.linked_dataset(folder, "linked.json")
    before = file_lists(tmp_path, store_path.parent), row_counts(store_path)
    result = run("authoring", "import", str(folder), "--coords", "norm1000", "--store", str(store_path))
    assert result.returncode == 2, result.stderr
    assert_refusal(result.stderr, ["linked.json"], JSON_REFUSED["linked.json"], server_paths(tmp_path))
    assert (file_lists(tmp_path, store_path.parent), row_counts(store_path)) == before


@pytest.mark.parametrize("image", list(IMAGE_FIXED))
def test_the_import_stores_a_fixed_image_at_its_displayed_size(cases, tmp_path, image):
    """Accepted: the image loader scales 16-bit to 8 bits, applies the EXIF orientation, detects a GIF named .png
    (stored as .gif) and flattens a transparent palette, so the imported step's size is the displayed size; a 1×1
    image is accepted as it is (only the Lab calls it out). A truncated PNG is refused (the test above)."""
    from authoring.store import Store

    path = tmp_path / "store" / "annotations.sqlite"
    result = run("authoring", "import", str(cases / wrapper(image)), "--coords", "norm1000", "--store", str(path))
    assert result.returncode == 0, result.stderr
    store = Store(path)
    try:
        (step,) = store.steps()
        assert (step.width, step.height) == IMAGE_FIXED[image]
        assert step.image.endswith(".gif" if image == "gif_named.png" else Path(image).suffix)
        width, height = IMAGE_FIXED[image]
        assert step.action["coordinate"] == pytest.approx([width / 2, height / 2])  # norm1000 [500, 500]
    finally:
        store.close()


@pytest.fixture(scope="module")
def mask_of_fixed_images(cases, cli_workspace) -> dict:
    """One `mask` run over one sample that shows every fixed image and the truncated PNG (one model load)."""
    images = [*IMAGE_FIXED, TRUNCATED]
    record = {"messages": [
        {"role": "user", "content": [*({"type": "image", "image": name} for name in images),
                                     {"type": "text", "text": "Open the settings."}]},
        {"role": "assistant", "content": corpus.answer((500, 500))}]}
    (cases / "fixed_images.json").write_text(json.dumps(record))
    before = file_lists(cases.parent, cli_workspace)
    result = run("lora_core", "mask", str(cases / "fixed_images.json"), "--json", "--workspace", str(cli_workspace))
    assert result.returncode == 0, result.stderr
    assert file_lists(cases.parent, cli_workspace) == before
    return dict(zip(images, json.loads(result.stdout)["images"]))


@pytest.mark.parametrize("image", [*IMAGE_FIXED, TRUNCATED])
def test_mask_sizes_a_fixed_image_as_displayed(mask_of_fixed_images, image):
    """Accepted: `mask` sizes each image by its header in the displayed frame (EXIF 6 swaps the sides); a truncated
    PNG is sized by its header too, as the mask never decodes pixels (the import and the Lab do, and refuse it)."""
    geometry = mask_of_fixed_images[image]
    assert (geometry["width"], geometry["height"]) == IMAGE_FIXED.get(image, (64, 64))
    assert geometry["visual_tokens"] > 0 and geometry["span"] is not None


@pytest.mark.parametrize("name", list(COORDINATES))
def test_mask_counts_a_bad_coordinate_answer(cases, cli_workspace, name):
    """Accepted: the mask shows the ids and labels the trainer would train, whatever the answer says (the audit
    and the Inspector flag the coordinate, the import refuses it)."""
    result = run("lora_core", "mask", str(cases / name), "--json", "--workspace", str(cli_workspace))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trained_tokens"] > 0


@pytest.fixture(scope="module")
def audit_of_accepted(cases, cli_workspace) -> dict:
    """One `audit` run over a JSONL of every case the audit accepts (one model load): row by case name."""
    names = [wrapper(image) for image in [*IMAGE_FIXED, TRUNCATED]] + list(COORDINATES)
    (cases / "accepted.jsonl").write_text("".join((cases / name).read_text().strip() + "\n" for name in names))
    before = file_lists(cases.parent, cli_workspace)
    result = run("lora_core", "audit", str(cases / "accepted.jsonl"), "--json", "--workspace", str(cli_workspace))
    assert result.returncode == 0, result.stderr
    assert file_lists(cases.parent, cli_workspace) == before
    return dict(zip(names, json.loads(result.stdout)["rows"]))


AUDIT_FLAGS = {"nan_coordinate.json": True, "negative_coordinate.json": True, "out_of_range_coordinate.json": False}


@pytest.mark.parametrize("name", [wrapper(image) for image in [*IMAGE_FIXED, TRUNCATED]] + list(COORDINATES))
def test_audit_reads_what_it_accepts_and_flags_bad_coordinates(audit_of_accepted, name):
    """Accepted: the audit reads sizes from headers (fixed images in their displayed frame, a truncated PNG by its
    header) and flags a NaN or negative coordinate as the bad_coordinate pitfall; an out-of-range one is within
    some convention (abs-original on a large screen), so the audit cannot call it wrong: the import does."""
    row = audit_of_accepted[name]
    assert row["error"] is None and row["trained_tokens"] > 0
    assert ("bad_coordinate" in row["pitfalls"]) is AUDIT_FLAGS.get(name, False), row["pitfalls"]


# ---------------------------------------------------------------------------- the HTTP API


@contextlib.contextmanager
def environment(**values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class App:
    """A running app with its own workspace and its own temp folder (TMPDIR: gradio's uploads and the
    Inspector's unpacked archives go there), both compared around every call."""

    def __init__(self, root: Path, embedded_path: Path, *args: str):
        from gradio_client import Client

        from tests.server import AppServer

        self.root = root
        self.workspace = root / "workspace"
        self.tmp = root / "tmp" / "t"  # two levels down: a '../../' escape from an unpacked upload stays in root
        self.tmp.mkdir(parents=True)
        shutil.copytree(embedded_path, self.workspace / "models" / embedded_path.name)
        with environment(TMPDIR=str(self.tmp), GRADIO_TEMP_DIR=str(self.tmp / "gradio")):
            self.server = AppServer(self.workspace, *args)
        self.server.wait_until_up(180)
        self.client = Client(self.server.url, verbose=False)
        self.forbidden = server_paths(self.workspace, self.tmp, root)

    def files(self) -> dict:
        return file_lists(self.root)

    def inspect(self, upload: Path | None = None, text: str | None = None):
        from gradio_client import handle_file

        return self.client.predict(handle_file(str(upload)) if upload else None, text, 0, "last", 6200, "max520",
                                   api_name="/mask_inspect")

    def report(self, image: Path):
        from gradio_client import handle_file

        return self.client.predict(handle_file(str(image)), ["max520"], 6200, api_name="/lab_report")

    def refused(self, call, *args) -> str:
        from gradio_client.exceptions import AppError

        before = self.files()
        with pytest.raises(AppError) as caught:
            call(*args)
        assert self.files() == before
        return str(caught.value)

    def accepted(self, call, *args):
        before = self.files()
        result = call(*args)
        assert self.files() == before
        return result


@pytest.fixture(scope="module")
def apps(tmp_path_factory, embedded_path, cases):
    """A private app (good.png in its workspace, for pasted samples) and a demo-mode app, warmed up so that
    the first call's one-time files (the demo screens, the model's caches) are made before any comparison."""
    started = {}
    try:
        for name, args in (("private", ()), ("demo", ("--demo",))):
            started[name] = App(tmp_path_factory.mktemp(f"app-{name}"), embedded_path, *args)
        shutil.copy(cases / GOOD, started["private"].workspace / GOOD)
        for app in started.values():
            assert app.inspect()["counts"]["image"] > 0  # the demo samples: demo data drawn, encoder loaded
            app.report(cases / GOOD)
            app.inspect(upload=zipped(cases, wrapper(GOOD), GOOD))
        yield started
    finally:
        for app in started.values():
            app.server.stop()


def zipped(cases: Path, *names: str) -> Path:
    """`names` from the case folder in one .zip (a dataset with its images, as a user uploads it)."""
    path = cases.parent / "uploads" / f"{Path(names[0]).stem}.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.write(cases / name, name)
    return path


MODES = ["private", "demo"]
UPLOAD_REFUSALS = (  # (upload, what the sentence names, its words)
    [(name, name, words) for name, words in JSON_REFUSED.items() if name != "linked.json"]
    + [(name, name, words) for name, words in ARCHIVES.items()]
    + [(f"{wrapper(image)}+{image}", image, words) for image, words in IMAGE_REFUSED.items()]
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("upload, named, words", UPLOAD_REFUSALS, ids=[case[0] for case in UPLOAD_REFUSALS])
def test_mask_inspect_refuses_a_bad_upload(apps, cases, mode, upload, named, words):
    """A .json upload, an archive, or a .zip of a sample with a bad image: one sentence naming it, nothing left
    behind (the archive's temp folder goes, no member lands outside it). A symlinked JSON cannot be uploaded as a
    link (the client sends the bytes it points at), so it is tested on the CLIs and the Path tab instead."""
    app = apps[mode]
    path = zipped(cases, *upload.split("+")) if "+" in upload else cases / upload
    message = app.refused(app.inspect, path)
    assert_refusal(message, [named], words, app.forbidden)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(COORDINATES) + [TRUNCATED, *IMAGE_FIXED])
def test_mask_inspect_accepts_an_upload_it_can_count(apps, cases, embedded_info, mode, name):
    """Accepted: the Inspector counts tokens from headers (fixed images in their displayed frame; a truncated PNG by
    its header) and flags a NaN or negative coordinate as the bad_coordinate pitfall."""
    from lora_core.analysis.resolution import preset_settings

    app = apps[mode]
    members = [name, GOOD] if name in COORDINATES else [wrapper(name), name]
    result = app.accepted(app.inspect, zipped(cases, *members))
    codes = {pitfall["code"] for pitfall in result["pitfalls"]}
    assert ("bad_coordinate" in codes) is AUDIT_FLAGS.get(name, False), codes
    size = IMAGE_FIXED.get(name, (64, 64) if name == TRUNCATED else (108, 240))
    max520 = next(named for named in preset_settings(embedded_info.settings) if named.key == "max520")
    assert result["counts"]["image"] == max520.recipe.geometry(*size).visual_tokens


PASTE_REFUSALS = [name for name in JSON_REFUSED if name not in ("not_utf8.json", "linked.json")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PASTE_REFUSALS)
def test_mask_inspect_refuses_bad_pasted_json(apps, cases, mode, name):
    """Pasted text: one sentence about "pasted JSON". Not UTF-8 cannot be pasted (the box holds text) and a link is
    a file; the 10 MB string is over the paste box's 2 MB limit before it is parsed; an escaping image path is
    refused in both modes (the demo refuses every path but a demo screenshot's name)."""
    app = apps[mode]
    text = (cases / name).read_text()
    words = {"long_string.json": "pasted JSON is 10.0 MB, more than the limit of 2.0 MB"}.get(name, JSON_REFUSED[name])
    if mode == "demo" and name.startswith("escape"):
        words = "is not one of the demo screenshots"
    else:
        words = words.replace(name, "pasted JSON")
    message = app.refused(app.inspect, None, text)
    assert_refusal(message, ["pasted JSON"], words, app.forbidden)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(COORDINATES))
def test_mask_inspect_flags_pasted_bad_coordinates(apps, cases, mode, name):
    """Accepted: a pasted sample with a NaN, negative or out-of-range answer is counted, and NaN and negative are
    flagged. The private app finds good.png in its workspace; the demo app's sample names the demo's home.png."""
    app = apps[mode]
    text = (cases / name).read_text()
    if mode == "demo":
        text = text.replace(GOOD, "home.png")
    result = app.accepted(app.inspect, None, text)
    codes = {pitfall["code"] for pitfall in result["pitfalls"]}
    assert ("bad_coordinate" in codes) is AUDIT_FLAGS[name], codes


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("image", [*IMAGE_REFUSED, TRUNCATED])
def test_lab_report_refuses_a_bad_image(apps, cases, mode, image):
    """The Lab decodes the upload: every refused image and the truncated PNG get one sentence naming the file."""
    app = apps[mode]
    message = app.refused(app.report, cases / image)
    assert_refusal(message, [image], IMAGE_REFUSED.get(image, DAMAGED), app.forbidden)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("image", list(IMAGE_FIXED))
def test_lab_report_uses_the_displayed_size_of_a_fixed_image(apps, cases, mode, image):
    """Accepted: the Lab reports the fixed image's displayed size (EXIF applied, 16-bit and palette decoded); a 1×1
    image gets the note that it is below the processor's minimum and upscaled."""
    app = apps[mode]
    result = app.accepted(app.report, cases / image)
    assert (result["width"], result["height"]) == IMAGE_FIXED[image]
    assert any("only 1×1" in note for note in result["notes"]) is (image == "one_pixel.png")


# ---------------------------------------------------------------------------- demo mode reads no server file


def demo_references(app) -> dict:
    """Image references a pasted sample may try in the demo app: id → (reference, what the sentence shows)."""
    screens = app.workspace / "demo" / "screens"
    model = app.workspace / "models" / "tiny-qwen3vl"
    assert (screens / "home.png").is_file() and (model / "config.json").is_file()
    return {
        "workspace-relative": ("demo/screens/home.png", "'demo/screens/home.png'"),
        "absolute-demo-screen": (str(screens / "home.png"), "'…/home.png' (an absolute path)"),
        "absolute-existing": (str(model / "config.json"), "'…/config.json' (an absolute path)"),
        "absolute-missing": (str(model / "missing.json"), "'…/missing.json' (an absolute path)"),
        "dot-dot": ("../../etc/passwd", "'../../etc/passwd'"),
        "etc-passwd": ("/etc/passwd", "'…/passwd' (an absolute path)"),
        "model-file": ("models/tiny-qwen3vl/config.json", "'models/tiny-qwen3vl/config.json'"),
        "unknown-name": (GOOD, f"'{GOOD}'"),
    }


DEMO_REFERENCES = ["workspace-relative", "absolute-demo-screen", "absolute-existing", "absolute-missing", "dot-dot",
                   "etc-passwd", "model-file", "unknown-name"]


@pytest.mark.parametrize("case", DEMO_REFERENCES)
def test_demo_paste_reads_only_the_demo_screenshots(apps, case):
    """Demo mode: a pasted image reference other than a demo screenshot's bare name is refused before any file is
    looked at, with one sentence that names the reference (an absolute one by its file name only) and no server
    folder; whether the file exists makes no difference to the sentence."""
    app = apps["demo"]
    reference, shown = demo_references(app)[case]
    message = app.refused(app.inspect, None, corpus.sample_text(image=reference))
    assert_refusal(message, ["pasted JSON"], f"image {shown} is not one of the demo screenshots", app.forbidden)
    assert "does not exist" not in message and "outside" not in message
    if case == "absolute-existing":  # the same sentence as for a file that is not there
        missing = app.refused(app.inspect, None, corpus.sample_text(image=demo_references(app)["absolute-missing"][0]))
        assert missing.replace("missing.json", "NAME") == message.replace("config.json", "NAME")
    if case in ("workspace-relative", "absolute-demo-screen"):
        assert "name it home.png alone" in message


def test_demo_paste_shows_a_demo_screenshot_by_name(apps, embedded_info):
    """Accepted: home.png is the demo's home screen (and an inline data: image counts at the placeholder size)."""
    from lora_core.analysis.resolution import preset_settings
    from PIL import Image

    app = apps["demo"]
    width, height = Image.open(app.workspace / "demo" / "screens" / "home.png").size
    result = app.accepted(app.inspect, None, corpus.sample_text(image="home.png"))
    max520 = next(named for named in preset_settings(embedded_info.settings) if named.key == "max520")
    assert result["counts"]["image"] == max520.recipe.geometry(width, height).visual_tokens
    inline = app.accepted(app.inspect, None, corpus.sample_text(image="data:image/png;base64,iVBORw0KGgo="))
    assert inline["counts"]["image"] > 0


def test_the_private_paste_resolves_in_the_workspace_and_names_no_folder(apps):
    """The private app reads pasted paths inside its workspace; a missing file's sentence names the file only."""
    app = apps["private"]
    assert app.accepted(app.inspect, None, corpus.sample_text())["counts"]["image"] > 0  # good.png in the workspace
    message = app.refused(app.inspect, None, corpus.sample_text(image="shots/missing.png"))
    assert_refusal(message, ["missing.png"], "Image missing.png does not exist", app.forbidden)


# ---------------------------------------------------------------------------- the Path tab (in-process)


@pytest.mark.parametrize("name", [name for name in JSON_REFUSED if not name.startswith("escape")])
def test_the_path_tab_refuses_a_bad_dataset_file_naming_no_folder(cases, name):
    """The Inspector's Path tab (a private app only): a file the reader refuses gives one sentence naming it."""
    from types import SimpleNamespace

    from ui.inspector import path_source

    ctx = SimpleNamespace(demo_mode=False, exposed=False, workspace=cases.parent)
    with pytest.raises(ValueError) as caught:
        path_source(ctx, str(cases / name))
    assert_refusal(str(caught.value), [name], JSON_REFUSED[name], server_paths(cases))


def test_an_exposed_app_reads_pasted_paths_as_the_demo_does(workspace):
    """An app served beyond its machine (exposed, not demo) reads no server path from pasted JSON either: the same
    rule as its Path tab, which it hides."""
    from types import SimpleNamespace

    from demo import ensure_demo_data
    from lora_core.data.samples import SampleFormatError
    from ui.inspector import pasted_source

    ctx = SimpleNamespace(demo_mode=False, exposed=True, workspace=workspace, demo=ensure_demo_data(workspace))
    with pytest.raises(SampleFormatError) as caught:
        pasted_source(ctx, corpus.sample_text(image="demo/screens/home.png"))
    assert_refusal(str(caught.value), ["pasted JSON"], "name it home.png alone", server_paths(workspace))
    sample = pasted_source(ctx, corpus.sample_text(image="home.png")).dataset.sample(0)
    assert sample.images == [ctx.demo.screen("home").path]
