"""The one image loader: every entry point (Lab, dataset view, import, export, Inspector, trainer, evaluation)
opens user images here, so sizes, pixels and refusals agree everywhere.

- Sizes come from the file header only (`read_image_size`), in the *displayed* frame: the EXIF orientation
  tag is read from the header and orientations 5–8 swap width and height.
- `open_screenshot` decodes to 8-bit RGB in that same frame: the EXIF orientation is applied (as PIL's
  `ImageOps.exif_transpose` does), 16-bit and other high-depth modes are scaled to 8 bits (v → v/257, never
  clipped), and palette and alpha images are composited onto white.
- Every refusal is an `ImageInputError` whose sentence names the file (and the record, given `where`) and
  says what to do.
- `image_warnings` describes how a trainer that reads the raw file (LLaMA-Factory, ms-swift: neither fix)
  sees it differently.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # about 6300×6300; far above any phone or desktop screenshot
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_ASPECT_RATIO = 200  # transformers' smart_resize refuses a long side above 200× the short one
ORIENTATION_TAG = 0x0112
# EXIF orientation → the transpose that shows the image upright (the table of PIL's ImageOps.exif_transpose)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
RAW_LOOKS = {2: "mirrored", 3: "upside down", 4: "upside down and mirrored", 5: "on its side and mirrored",
             6: "on its side", 7: "on its side and mirrored", 8: "on its side"}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
HIGH_DEPTH_MODES = (*SIXTEEN_BIT_MODES, "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
WHITE = (255, 255, 255)
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp",
              "TIFF": ".tiff"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageInputError(ValueError):
    """A user-supplied image that cannot be used; the message says what to do."""


def refusal(message: str, where: str | None = None) -> ImageInputError:
    """The error for `message`, prefixed with the record (`where`) when there is one."""
    return ImageInputError(f"{where}: {message}" if where else message)


def safe_resolve(base: Path, reference: str) -> Path:
    """Resolve `reference` relative to `base`, refusing absolute paths and `..` escapes."""
    base = Path(base).resolve()
    if not isinstance(reference, str):
        raise ImageInputError(f"An image reference must be a path string, got {reference!r}.")
    if not reference.strip():
        raise ImageInputError("An image reference is empty; give a path relative to the dataset file.")
    candidate = Path(reference)
    if candidate.is_absolute():
        target = candidate.resolve()
    else:
        target = (base / candidate).resolve()
    if target != base and base not in target.parents:
        raise ImageInputError(  # the folder is not named: it is a server path (a workspace, an upload's temp folder)
            f"Image path {reference!r} points outside the dataset's folder; keep images inside it."
        )
    return target


# ---------------------------------------------------------------------------- the header


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: the displayed size (orientation applied), the raw stored size, mode and format."""

    width: int
    height: int
    raw_width: int
    raw_height: int
    orientation: int  # EXIF orientation 1–8 (1: stored upright)
    mode: str
    format: str | None


def _png_exif(path: Path) -> bytes | None:
    """The eXIf chunk of a PNG, found by walking the chunk headers (no pixel data is read or decoded)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != PNG_SIGNATURE:
                return None
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"eXIf":
                    data = handle.read(length)
                    return data if len(data) == length else None
                if kind == b"IEND" or length > 2**31:
                    return None
                handle.seek(length + 4, 1)  # the data and its CRC
    except OSError:
        return None


def _orientation(image: Image.Image, path: Path) -> int:
    """The EXIF orientation from the header; 1 when absent or invalid."""
    try:
        if image.format == "PNG":  # PIL's PNG getexif() decodes the pixels to reach an eXIf after the data
            data = image.info.get("exif") or _png_exif(path)
            if not data:
                return 1
            exif = Image.Exif()
            exif.load(data)
        else:
            exif = image.getexif()
        value = int(exif.get(ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block is ignored, as viewers do
        return 1
    return value if value in UPRIGHT else 1


def image_header(path: Path, where: str | None = None) -> ImageHeader:
    """Sizes, orientation, mode and format from the file header only; no pixels are decoded."""
    path = Path(path)
    if not path.exists():
        raise refusal(f"Image {path.name} does not exist.", where)  # no folder: it may be a server path
    if not path.is_file():
        raise refusal(f"{path.name} is not a file.", where)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = _orientation(image, path)
            mode, fmt = image.mode, image.format
    except Image.DecompressionBombError:
        raise refusal(
            f"{path.name} declares an enormous size (a decompression bomb); resize it below "
            f"{MAX_IMAGE_PIXELS:,} pixels.", where
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise refusal(
            f"{path.name} is not a readable image ({without_folder(error, path)}); upload a PNG or JPEG screenshot.",
            where,
        ) from None
    shown = (height, width) if orientation >= 5 else (width, height)
    return ImageHeader(shown[0], shown[1], width, height, orientation, mode, fmt)


def read_image_size(path: Path, where: str | None = None) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the file header only."""
    header = image_header(path, where)
    return header.width, header.height


def image_extension(path: Path) -> str:
    """The extension of the format PIL detects in the file (a GIF named .png gives .gif)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        fmt = None
    if fmt in EXTENSIONS:
        return EXTENSIONS[fmt]
    if fmt:
        known = [ext for ext, name in Image.registered_extensions().items() if name == fmt]
        if known:
            return sorted(known, key=len)[0]
    return path.suffix.lower() or ".img"


# ---------------------------------------------------------------------------- checks


def without_folder(error: Exception, path: Path) -> str:
    """PIL's message without the server-side folder (uploads live in a temp folder users need not see)."""
    return str(error).replace(str(path), path.name).replace(repr(str(path))[1:-1], path.name)


def check_dimensions(width: int, height: int, name: str = "The image", where: str | None = None) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise refusal(
            f"{name} is {width:,}×{height:,} ({width * height / 1e6:,.0f} megapixels), above the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit; a screenshot is at most a few megapixels. "
            "Downscale it and upload again.", where
        )


def aspect_problem(width: int, height: int, name: str = "This image", limit: float = MAX_ASPECT_RATIO) -> str | None:
    """The sentence refusing a width×height image the processor cannot take (aspect over 200:1), else None."""
    if min(width, height) < 1:
        return f"{name} is {width}×{height}: it has no pixels. Upload a screenshot."
    ratio = max(width, height) / min(width, height)
    if ratio <= limit:
        return None
    shown = f"{ratio:.0f}" if ratio >= limit + 0.5 else f"{ratio:.1f}"
    return (f"{name} is {width}×{height}: its aspect ratio {shown}:1 is above the processor's limit of "
            f"{limit:g}:1 (transformers' smart_resize refuses it). Crop it into screen-sized pieces "
            "and use those instead.")


def check_aspect(width: int, height: int, name: str = "This image", where: str | None = None,
                 limit: float = MAX_ASPECT_RATIO) -> None:
    problem = aspect_problem(width, height, name, limit)
    if problem:
        raise refusal(problem, where)


def check_images(paths, where: str | None = None) -> None:
    """Refuse, from the headers alone, any file among `paths` (None: inline) that no recipe can size: unreadable,
    a decompression bomb, or over 200:1. The CLIs call it before the model loads."""
    for path in paths:
        if path is not None:
            header = image_header(Path(path), where)
            check_aspect(header.width, header.height, Path(path).name, where)


# ---------------------------------------------------------------------------- pixels


def to_8bit(image: Image.Image) -> Image.Image:
    """A high-depth single-channel image (I;16*, I, F) as 8-bit "L", scaled, never clipped."""
    import numpy as np

    values = np.asarray(image)
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
        scaled = values.astype(np.float64) / 257
    else:
        values = values.astype(np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if image.mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255
        elif low >= 0 and high <= 255:
            scaled = values
        elif low >= 0 and high <= 65535:
            scaled = values / 257
        else:  # a wider range (32-bit, negative): stretch what is there onto 0–255
            scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: high depth scaled, palette and alpha composited onto white."""
    if image.mode in HIGH_DEPTH_MODES:
        image = to_8bit(image)
    transparent = "transparency" in image.info
    if image.mode in ALPHA_MODES or (transparent and image.mode in ("P", "L", "RGB", "1")):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def open_screenshot(path: Path, where: str | None = None, max_aspect: float | None = MAX_ASPECT_RATIO) -> Image.Image:
    """Decode a screenshot to 8-bit RGB in its displayed frame, after checking its header, size and aspect ratio.

    where: the record, named in refusals ("data.jsonl, line 3").
    max_aspect: refuse a longer aspect ratio (None: the caller's recipe has sized the image already).
    """
    path = Path(path)
    if path.exists() and path.stat().st_size > MAX_IMAGE_BYTES:
        raise refusal(
            f"{path.name} is {path.stat().st_size / 1e6:.0f} MB; screenshots above "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB are refused. Save it as PNG or JPEG at screen resolution.", where
        )
    header = image_header(path, where)
    width, height = header.width, header.height
    check_dimensions(width, height, path.name, where)
    if max_aspect is not None:
        check_aspect(width, height, path.name, where, max_aspect)
    try:
        with Image.open(path) as image:
            image.load()
            rgb = to_rgb(image)
    except Image.DecompressionBombError:
        raise refusal(f"{path.name} is too large to decode safely.", where) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise refusal(
            f"{path.name} is damaged: its header reads {width}×{height} but the pixels do not decode "
            f"({without_folder(error, path)}). "
            "Re-export the screenshot.", where
        ) from None
    if header.orientation in UPRIGHT:
        rgb = rgb.transpose(UPRIGHT[header.orientation])
    return rgb


# ---------------------------------------------------------------------------- what a raw reader sees


@lru_cache(maxsize=4096)
def _warnings(path: str, mtime_ns: int, size: int, reader: str) -> tuple[str, ...]:
    try:
        header = image_header(Path(path))
    except ImageInputError:
        return ()  # the size check refuses the file with its own sentence
    name = Path(path).name
    found = []
    if header.orientation != 1:
        found.append(
            f"{name} carries EXIF orientation {header.orientation}: the app uses its displayed "
            f"{header.width}×{header.height} frame, but {reader} does not apply the orientation and sees the raw "
            f"{header.raw_width}×{header.raw_height} frame {RAW_LOOKS[header.orientation]}, so every coordinate "
            f"points at a different spot. Save the screenshot upright (PIL ImageOps.exif_transpose) before "
            f"training with {reader}.")
    if header.mode in HIGH_DEPTH_MODES:
        depth = "16-bit" if header.mode in SIXTEEN_BIT_MODES or header.format == "PNG" else f"high-depth {header.mode}"
        found.append(
            f"{name} is a {depth} image: the app scales it to 8 bits (v/257), but {reader} converts it with "
            f"convert(\"RGB\"), which clips every value above 255, so it sees an almost white screen. Save it as an "
            f"8-bit PNG before training with {reader}.")
    return tuple(found)


def image_warnings(path: Path, reader: str = "a trainer that reads the raw file") -> list[str]:
    """How `reader` (a peer that applies neither EXIF orientation nor 16-bit scaling) sees this file differently."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return []
    return list(_warnings(str(path), stat.st_mtime_ns, stat.st_size, reader))
