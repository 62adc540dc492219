"""The one archive checker: every uploaded .zip (the Inspector's upload, the Authoring import) is checked here
before anything is unpacked, and unpacked here under a guard.

Checked from the central directory, before a byte is written:
- the total uncompressed size (at most `MAX_ARCHIVE_BYTES`, 1 GiB);
- the number of entries (at most `MAX_ARCHIVE_MEMBERS`, 20,000);
- each member's compression ratio (at most `MAX_COMPRESSION_RATIO`, 100:1; members under 1 MiB are exempt,
  the total size bounds them);
- zip-slip: absolute paths, drive letters, `..`, links and encrypted members are refused.
While unpacking, a member that yields more bytes than its header declares stops the extraction and what was
written is removed. The limits are module constants, function arguments, or the environment variables
LORA_MAX_ARCHIVE_BYTES, LORA_MAX_ARCHIVE_MEMBERS and LORA_MAX_COMPRESSION_RATIO. Every refusal is an
`ArchiveRefused` whose one sentence names the archive, the member and the limit.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_ARCHIVE_BYTES = 1024**3
MAX_ARCHIVE_MEMBERS = 20_000
MAX_COMPRESSION_RATIO = 100
RATIO_EXEMPT_BYTES = 1024**2  # a small member may compress well (a JSON of repeated prompts); the total bounds it
CHUNK = 1024**2
ENV = {"max_bytes": "LORA_MAX_ARCHIVE_BYTES", "max_members": "LORA_MAX_ARCHIVE_MEMBERS",
       "max_ratio": "LORA_MAX_COMPRESSION_RATIO"}
DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveRefused(ValueError):
    """An archive that is not unpacked; the message names the archive, the member and the limit."""


def size_text(count: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{int(count):,} bytes"


def env_number(name: str, default: float, cast=int):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = cast(float(text)) if cast is int else cast(text)
    except ValueError:
        raise ArchiveRefused(f"${name} is {text!r}, not a number; unset it or give a positive number.") from None
    if value <= 0:
        raise ArchiveRefused(f"${name} is {text!r}; it must be a positive number.")
    return value


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = MAX_ARCHIVE_BYTES
    max_members: int = MAX_ARCHIVE_MEMBERS
    max_ratio: float = MAX_COMPRESSION_RATIO

    @classmethod
    def resolve(cls, max_bytes: int | None = None, max_members: int | None = None,
                max_ratio: float | None = None) -> "ArchiveLimits":
        """Arguments first, then the environment variables, then the module constants (read at call time)."""
        return cls(
            int(max_bytes) if max_bytes is not None else env_number(ENV["max_bytes"], MAX_ARCHIVE_BYTES),
            int(max_members) if max_members is not None else env_number(ENV["max_members"], MAX_ARCHIVE_MEMBERS),
            float(max_ratio) if max_ratio is not None else env_number(ENV["max_ratio"], MAX_COMPRESSION_RATIO, float),
        )


def is_link(member: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


def member_parts(member: zipfile.ZipInfo, name: str) -> tuple[str, ...]:
    """The member's path inside the destination, as parts; refuses anything that would land outside it."""
    filename = member.filename.replace("\\", "/")
    parts = tuple(part for part in filename.split("/") if part not in ("", "."))
    if filename.startswith("/") or DRIVE.match(filename) or ".." in parts or "\x00" in filename:
        raise ArchiveRefused(
            f"{member.filename!r} in {name} points outside its folder (an absolute path or '..'); such members "
            "are refused so that nothing lands outside the folder: zip the folder's contents only. "
            "Nothing was unpacked.")
    return parts


def check_archive(archive: zipfile.ZipFile, destination: Path, name: str | None = None, *,
                  limits: ArchiveLimits | None = None, max_bytes: int | None = None, max_members: int | None = None,
                  max_ratio: float | None = None) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Every member with where it would be written, or ArchiveRefused; reads only the central directory."""
    limits = limits or ArchiveLimits.resolve(max_bytes, max_members, max_ratio)
    name = name or Path(archive.filename or "the archive").name
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise ArchiveRefused(
            f"{name} holds {len(members):,} entries, more than the limit of {limits.max_members:,} "
            f"(${ENV['max_members']}); nothing was unpacked. Split it into smaller archives.")
    total = sum(member.file_size for member in members)
    if total > limits.max_bytes:
        raise ArchiveRefused(
            f"{name} would unpack to {size_text(total)}, more than the limit of {size_text(limits.max_bytes)} "
            f"(${ENV['max_bytes']}); nothing was unpacked. Upload a smaller archive or give the folder's path.")
    destination = Path(destination).resolve()
    planned = []
    for member in members:
        parts = member_parts(member, name)
        if is_link(member):
            raise ArchiveRefused(f"{member.filename!r} in {name} is a link; links are not unpacked, so nothing was. "
                                 "Zip the files themselves.")
        if member.flag_bits & 0x1:
            raise ArchiveRefused(f"{member.filename!r} in {name} is encrypted; nothing was unpacked. "
                                 "Zip it without a password.")
        if member.file_size > RATIO_EXEMPT_BYTES:
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveRefused(
                    f"{member.filename!r} in {name} is compressed {ratio:,.0f}:1 ({size_text(member.file_size)} from "
                    f"{size_text(member.compress_size)}), more than the limit of {limits.max_ratio:g}:1 "
                    f"(${ENV['max_ratio']}): a zip bomb or padding, not screenshots and JSON; nothing was unpacked.")
        target = destination.joinpath(*parts) if parts else destination
        if target != destination and destination not in target.resolve().parents:
            raise ArchiveRefused(f"{member.filename!r} in {name} points outside its folder; such members are refused "
                                 "so that nothing lands outside the folder. Nothing was unpacked.")
        planned.append((member, target))
    return planned


def extract_archive(zip_path: Path, destination: Path, *, max_bytes: int | None = None,
                    max_members: int | None = None, max_ratio: float | None = None,
                    name: str | None = None) -> list[Path]:
    """Check `zip_path`, then unpack it into `destination` (created only once the checks pass).

    Returns the files written. A member that yields more than its declared size (or pushes the total past the
    limit) stops the extraction; the files and folders written so far are removed and ArchiveRefused is raised.
    """
    zip_path = Path(zip_path)
    name = name or zip_path.name
    limits = ArchiveLimits.resolve(max_bytes, max_members, max_ratio)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ArchiveRefused(f"{name} is not a readable .zip file.") from None
    with archive:
        planned = check_archive(archive, destination, name, limits=limits)
        destination = Path(destination).resolve()
        created_root = not destination.exists()
        destination.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        folders: list[Path] = []
        try:
            total = 0
            for member, target in planned:
                if member.is_dir():
                    folders += make_folders(target, destination)
                    continue
                folders += make_folders(target.parent, destination)
                total += copy_member(archive, member, target, name, limits.max_bytes - total, written)
        except BaseException as error:
            remove_written(written, folders, destination if created_root else None)
            if isinstance(error, (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError)):
                raise ArchiveRefused(f"{name} could not be unpacked ({error}); nothing was kept.") from None
            if isinstance(error, OSError) and not isinstance(error, ArchiveRefused):
                raise ArchiveRefused(f"{name} could not be unpacked: {error.strerror or error}; nothing was kept.") \
                    from None
            raise
    return written


def make_folders(folder: Path, root: Path) -> list[Path]:
    """Create `folder` (inside root); returns the folders that did not exist, outermost first."""
    missing = []
    current = folder
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def copy_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, name: str, budget: int,
                written: list[Path]) -> int:
    """Stream one member to `target`, stopping once it yields more than its declared size or the budget."""
    allowed = min(member.file_size, budget)
    count = 0
    try:
        sink = open(target, "xb")
    except (FileExistsError, IsADirectoryError):
        raise ArchiveRefused(f"{member.filename!r} is in {name} twice (or clashes with a folder of that name); "
                             "nothing was kept.") from None
    written.append(target)
    with archive.open(member) as source, sink:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            count += len(chunk)
            if count > allowed:
                raise ArchiveRefused(
                    f"{member.filename!r} in {name} unpacks to more than the {size_text(member.file_size)} its header "
                    "declares (or past the archive's size limit); unpacking stopped and what was written is removed.")
            sink.write(chunk)
    return count


def remove_written(files: list[Path], folders: list[Path], root: Path | None) -> None:
    for path in files:
        try:
            path.unlink()
        except OSError:
            pass
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
