"""A content-addressed folder for de-identified files: sha256 -> `ab/cd/<sha256>.dcm`.

A file is written to a temporary name in the same folder, flushed to disk and renamed over
its final name, so a reader never sees half a file and a crash leaves at most a stray
temporary (removed by :meth:`ContentStore.sweep`). Writing the same content twice is a no-op,
which makes ingest idempotent.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TMP_SUFFIX = ".tmp"
FSYNC_THREADS = 16


@dataclass(frozen=True)
class Stored:
    digest: str
    path: Path
    size: int
    created: bool  # False when the content was already there


class ContentStore:
    def __init__(self, root: Path, *, fsync: bool = True, suffix: str = ".dcm") -> None:
        self.root = root
        self.fsync = fsync
        self.suffix = suffix

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / f"{digest}{self.suffix}"

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put(self, data: bytes, digest: str | None = None) -> Stored:
        digest = digest or hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.is_file() and path.stat().st_size == len(data):
            return Stored(digest, path, len(data), False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return Stored(digest, path, len(data), True)

    def put_many(self, items: list[tuple[bytes, str]]) -> list[Stored]:
        """:meth:`put` for a batch: every file written, then flushed to disk by a pool of
        threads (concurrent fsyncs share the file system's journal commits: a batch costs
        a few disk flushes instead of one per file), then renamed into place."""
        out: list[Stored] = []
        todo: list[tuple[int, Path, Path]] = []
        try:
            for data, digest in items:
                path = self.path_for(digest)
                if path.is_file() and path.stat().st_size == len(data):
                    out.append(Stored(digest, path, len(data), False))
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
                todo.append((fd, tmp, path))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                out.append(Stored(digest, path, len(data), True))
            if self.fsync and todo:
                with ThreadPoolExecutor(min(FSYNC_THREADS, len(todo))) as pool:
                    list(pool.map(os.fsync, [fd for fd, _, _ in todo]))
        finally:
            for fd, _, _ in todo:
                os.close(fd)
        for _, tmp, path in todo:
            os.replace(tmp, path)
        return out

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def sweep(self) -> int:
        """Remove temporaries left by a crash; returns how many."""
        removed = 0
        if self.root.is_dir():
            for tmp in self.root.rglob(f"*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed
