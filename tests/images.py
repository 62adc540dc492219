"""Bad and odd images for input-handling tests, made without allocating their pixels."""
import struct
import zlib
from pathlib import Path

from PIL import Image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def forged_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height (a decompression bomb) with almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def truncated_png(path: Path, source: Path) -> Path:
    """A real PNG cut in half: the header reads fine, the pixels do not."""
    data = Path(source).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def plain_image(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (width, height), "white").save(path)
    return path
