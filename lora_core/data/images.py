"""Opening user images safely: sizes from headers, clear errors, no path escapes, no pixel bombs."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # about 6300×6300; far above any phone or desktop screenshot
MAX_IMAGE_BYTES = 50 * 1024 * 1024


class ImageInputError(ValueError):
    """A user-supplied image that cannot be used; the message says what to do."""


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
        raise ImageInputError(
            f"Image path {reference!r} points outside {base}; keep images inside the dataset's folder."
        )
    return target


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only; no pixels are decoded."""
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"Image {path.name} does not exist ({path}).")
    if not path.is_file():
        raise ImageInputError(f"{path} is not a file.")
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise ImageInputError(
            f"{path.name} declares an enormous size (a decompression bomb); resize it below "
            f"{MAX_IMAGE_PIXELS:,} pixels."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageInputError(
            f"{path.name} is not a readable image ({without_folder(error, path)}); upload a PNG or JPEG screenshot."
        ) from None


def open_screenshot(path: Path) -> Image.Image:
    """Decode a screenshot to RGB after checking its header, size and aspect ratio."""
    path = Path(path)
    if path.exists() and path.stat().st_size > MAX_IMAGE_BYTES:
        raise ImageInputError(
            f"{path.name} is {path.stat().st_size / 1e6:.0f} MB; screenshots above "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB are refused. Save it as PNG or JPEG at screen resolution."
        )
    width, height = read_image_size(path)
    check_dimensions(width, height, path.name)
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except Image.DecompressionBombError:
        raise ImageInputError(f"{path.name} is too large to decode safely.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(
            f"{path.name} is damaged: its header reads {width}×{height} but the pixels do not decode "
            f"({without_folder(error, path)}). "
            "Re-export the screenshot."
        ) from None


def without_folder(error: Exception, path: Path) -> str:
    """PIL's message without the server-side folder (uploads live in a temp folder users need not see)."""
    return str(error).replace(str(path), path.name).replace(repr(str(path))[1:-1], path.name)


def check_dimensions(width: int, height: int, name: str = "The image") -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            f"{name} is {width:,}×{height:,} ({width * height / 1e6:,.0f} megapixels), above the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit; a screenshot is at most a few megapixels. "
            "Downscale it and upload again."
        )
