"""Zip archives as import sources, bounded: what a member may expand to, and where.

A zip names each member's size and compressed size in its central directory; Python's
:mod:`zipfile` stops a member at its declared size (and checks its CRC), so those numbers
bound what reading it costs. A member is refused before a byte of it is inflated when
its name would escape the import (``../../x.dcm``, ``/etc/x``, ``C:\\x``: reported, never
written anywhere), when it would expand beyond :attr:`ZipLimits.member_bytes`, when it
compresses suspiciously well (a "zip bomb": more than :attr:`ZipLimits.ratio` times, for
members above :attr:`ZipLimits.ratio_floor_bytes`), or when the archive's members together
pass :attr:`ZipLimits.total_bytes`. A member is read in chunks with the same bound, so a
lying header cannot make it larger either.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    member_bytes: int = 1024**3  # one DICOM instance; larger ones are imported unzipped
    total_bytes: int = 64 * 1024**3
    ratio: float = 100.0
    ratio_floor_bytes: int = 16 * 1024**2  # small members (headers, masks) may compress well


@dataclass(frozen=True)
class Member:
    """One archive member: the name a person finds it by, and how to read it (or why not)."""

    name: str
    read: Callable[[], bytes]


def unsafe_name(name: str) -> str | None:
    """Why a member name would escape the folder it is read into (None: it is safe)."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        return "an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "a path that climbs out of the archive (..)"
    return None


def zip_members(
    archive: zipfile.ZipFile, path: Path, limits: ZipLimits | None = None
) -> Iterator[Member]:
    """The archive's file members, each readable within the limits or refused with why."""
    limits = limits or ZipLimits()
    total = 0
    for info in archive.infolist():
        if info.is_dir() or PurePosixPath(info.filename).name.startswith("."):
            continue
        name = f"{path}!{info.filename}"
        why = _refusal(info, limits, total)
        total += info.file_size
        if why is not None:
            yield Member(name, _refuse(f"{info.filename}: {why}"))
            continue
        yield Member(name, _reader(archive, info, limits.member_bytes))


def _refusal(info: zipfile.ZipInfo, limits: ZipLimits, total: int) -> str | None:
    unsafe = unsafe_name(info.filename)
    if unsafe is not None:
        return f"refused, the member name is {unsafe}"
    size = info.file_size
    if size > limits.member_bytes:
        return f"refused, it expands to {size} bytes (at most {limits.member_bytes} per member)"
    ratio = size / max(info.compress_size, 1)
    if size > limits.ratio_floor_bytes and ratio > limits.ratio:
        return (
            f"refused, it expands {ratio:.0f} times ({info.compress_size} to {size} bytes; "
            f"at most {limits.ratio:.0f}): a zip bomb?"
        )
    if total + size > limits.total_bytes:
        return f"refused, the archive expands beyond {limits.total_bytes} bytes in all"
    return None


def _reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, bound: int) -> Callable[[], bytes]:
    def read() -> bytes:
        parts: list[bytes] = []
        size = 0
        with archive.open(info) as fh:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                if size > bound:
                    raise OSError(f"{info.filename}: expands beyond {bound} bytes; refused")
                parts.append(chunk)
        return b"".join(parts)

    return read


def _refuse(message: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise OSError(message)

    return read
