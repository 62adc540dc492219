"""Write the bad-input corpus (issue #10) into tests/data/bad/: small, deterministic files, one per case.

    python scripts/make_bad_corpus.py [--out FOLDER]

Running it twice gives the same bytes. Cases too large or too unportable to commit (an archive with more
members than the limit, a 10 MB string, a dataset JSON that is a symlink out of its folder) are made at test
time by the functions at the bottom, which tests/test_bad_corpus.py imports. tests/data/bad/README.md lists
every file and what it tests.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "bad"
DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the archives are the same bytes on every run
GOOD = "good.png"  # the one healthy screenshot the JSON cases point at
THINKING = "The settings icon is at the top right."


def answer(coordinate) -> str:
    """A MAI-UI answer clicking `coordinate`, written as raw JSON text (so NaN stays NaN)."""
    point = "[" + ", ".join(str(value) for value in coordinate) + "]"
    return (f"<thinking>{THINKING}</thinking><tool_call>"
            f'{{"name": "mobile_use", "arguments": {{"action": "click", "coordinate": {point}}}}}</tool_call>')


def sample_text(image: str = GOOD, coordinate=(500, 500), task: str = "Open the settings.") -> str:
    """One sample as JSON text: a user turn with the screenshot and the task, the assistant's answer."""
    record = {"messages": [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": task}]},
        {"role": "assistant", "content": "@ANSWER@"}]}
    return json.dumps(record, ensure_ascii=False).replace('"@ANSWER@"', json.dumps(answer(coordinate)))


# ---------------------------------------------------------------------------- images


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height with almost no pixel data (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def screenshot(width: int, height: int) -> Image.Image:
    """A plain screen: white with a dark bar at the top and a blue button in the middle."""
    image = Image.new("RGB", (width, height), "white")
    image.paste((40, 40, 40), (0, 0, width, max(1, height // 10)))
    image.paste((30, 90, 200), (width // 4, height // 2, 3 * width // 4, height // 2 + max(1, height // 12)))
    return image


def sixteen_bit() -> bytes:
    """A 16-bit grayscale PNG whose values are all above 255 (a naive convert("RGB") clips it to white)."""
    import numpy as np

    values = np.tile(np.linspace(4000, 60000, 96, dtype=np.uint16), (64, 1))
    return encoded(Image.fromarray(values), "PNG")  # uint16: mode I;16


def exif_rotated() -> bytes:
    """A JPEG stored 120×80 (landscape) with EXIF orientation 6: it is displayed 80×120 (portrait)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(screenshot(120, 80), "JPEG", quality=80, exif=exif.tobytes())


def gif_named_png() -> bytes:
    return encoded(screenshot(90, 160).convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "GIF")


def palette_transparent() -> bytes:
    """A palette PNG whose index 0 is transparent (the background): it is composited onto white."""
    image = Image.new("P", (90, 160), 0)
    image.putpalette([0, 0, 0, 30, 90, 200] + [0, 0, 0] * 254)
    image.paste(1, (20, 60, 70, 100))
    return encoded(image, "PNG", transparency=0)


def truncated() -> bytes:
    """A real PNG cut in half: its header reads 64×64, its pixels do not decode."""
    rng = random.Random(10)
    noise = Image.frombytes("RGB", (64, 64), bytes(rng.randrange(256) for _ in range(64 * 64 * 3)))
    data = encoded(noise, "PNG")
    return data[: len(data) // 2]


IMAGES = {
    GOOD: lambda: encoded(screenshot(108, 240), "PNG"),
    "sixteen_bit.png": sixteen_bit,
    "exif_rotated.jpg": exif_rotated,
    "gif_named.png": gif_named_png,
    "palette_transparent.png": palette_transparent,
    "ratio_400.png": lambda: encoded(Image.new("RGB", (800, 2), "white"), "PNG"),
    "aspect_201.png": lambda: encoded(Image.new("RGB", (402, 2), "white"), "PNG"),
    "one_pixel.png": lambda: encoded(Image.new("RGB", (1, 1), "white"), "PNG"),
    "not_an_image.png": lambda: b"This is a text file with a .png name, not a screenshot.\n",
    "truncated.png": truncated,
    "forged_50000.png": lambda: forged_png(50_000, 50_000),
}


# ---------------------------------------------------------------------------- JSON


def nested(depth: int) -> str:
    """A sample whose user content is a list nested `depth` levels deep."""
    return '{"messages": [{"role": "user", "content": ' + "[" * depth + "]" * depth + "}]}"


JSON_FILES = {
    "not_utf8.json": lambda: sample_text(task="Öffne die Einstellungen.").encode("latin-1"),
    "invalid.json": lambda: b'{"messages": [{"role": "user", "content": "Open the settings."},\n',
    "deep.json": lambda: nested(20_000).encode(),  # deep enough for a RecursionError in json
    "nested_150.json": lambda: nested(150).encode(),  # parses, but deeper than the 100-level limit
    "nan_coordinate.json": lambda: sample_text(coordinate=("NaN", 500)).encode(),
    "out_of_range_coordinate.json": lambda: sample_text(coordinate=(1500, 2000)).encode(),
    "negative_coordinate.json": lambda: sample_text(coordinate=(-5, 300)).encode(),
    "escape_relative.json": lambda: sample_text(image="../../etc/passwd").encode(),
    "escape_absolute.json": lambda: sample_text(image="/etc/passwd").encode(),
}


# ---------------------------------------------------------------------------- archives


def zip_bytes(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def dataset_members() -> list[tuple[str, bytes]]:
    """A healthy dataset with its screenshot: what every bad archive also holds."""
    return [("dataset.json", sample_text(image=f"images/{GOOD}").encode()),
            (f"images/{GOOD}", IMAGES[GOOD]())]


def zip_bomb() -> bytes:
    """A member declaring 50 MiB of zeros stored in ~50 KiB (about 1000:1, the limit is 100:1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in dataset_members():
            archive.writestr(zipfile.ZipInfo(name, DATE), data, zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("images/padding.bin", DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            chunk = bytes(1024**2)
            for _ in range(50):
                member.write(chunk)
    return buffer.getvalue()


def symlink_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("images/link.png", DATE)
    info.create_system = 3  # unix: the mode bits below are read
    info.external_attr = (0o120777 << 16)
    return info


ARCHIVES = {
    "zip_bomb.zip": zip_bomb,
    "zip_slip.zip": lambda: zip_bytes([*dataset_members(), ("../../evil.txt", b"written outside the folder\n")]),
    "zip_slip_absolute.zip": lambda: zip_bytes([*dataset_members(), ("/etc/cron.d/evil", b"* * * * * true\n")]),
    "zip_symlink.zip": lambda: zip_bytes([*dataset_members(), (symlink_member(), b"/etc/passwd")]),
}


# ---------------------------------------------------------------------------- made at test time


def many_members_zip(path: Path, count: int = 20_001) -> Path:
    """An archive with `count` empty members (the limit is 20,000): about 2 MB, so made at test time."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in dataset_members():
            archive.writestr(zipfile.ZipInfo(name, DATE), data)
        for number in range(count - 2):
            archive.writestr(zipfile.ZipInfo(f"f/{number}", DATE), b"")
    return path


def long_string_json(path: Path, chars: int = 10 * 1024**2) -> Path:
    """A sample whose task text is one 10 MB string (the limit is 1,000,000 characters)."""
    path.write_text(sample_text(task="a" * chars))
    return path


def linked_dataset(folder: Path, name: str = "linked.json") -> Path:
    """`folder/name`: a symlink to a dataset in a sibling folder (outside `folder`). Git cannot keep it portably."""
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.json").write_text(sample_text())
    link = folder / name
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(outside / "secret.json", link)
    return link


# ----------------------------------------------------------------------------


def corpus() -> dict[str, bytes]:
    files = {}
    for table in (IMAGES, JSON_FILES, ARCHIVES):
        for name, make in table.items():
            files[name] = make()
    return files


def write(out: Path = OUT) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, data in corpus().items():
        (out / name).write_bytes(data)
        sizes[name] = len(data)
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = write(args.out)
    for name, size in sizes.items():
        print(f"{size:>9,}  {name}")
    print(f"{sum(sizes.values()):>9,}  in {len(sizes)} files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
