"""Files a user names, read and written so that any damage ends in one line, never a traceback or a hang.

A path can be a folder, a device that never ends (``/dev/zero``), a FIFO that blocks until
someone writes, binary, too large, read-only or on a full disk; each becomes a ``FileError``
naming the file, the cause and the fix.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from benchbench.errors import BenchError

TEXT_LIMIT_BYTES = 64 * 1024 * 1024


class FileError(BenchError):
    """A file a user named cannot be read or written."""


@contextlib.contextmanager
def open_regular(path: Path, what: str, fix: str) -> Iterator[BinaryIO]:
    """A regular file opened for binary reading; folders, devices and FIFOs are refused before any read."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileError(f"{what} {path}: no such file; {fix}") from None
    except OSError as exc:
        raise FileError(f"{what} {path}: cannot read ({exc.strerror}); {fix}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "is a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
        raise FileError(f"{what} {path}: {kind}; {fix}")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        try:
            yield handle
        except OSError as exc:
            raise FileError(f"{what} {path}: cannot read ({exc.strerror}); {fix}") from None


def read_bytes(path: Path, what: str, fix: str, limit: int = TEXT_LIMIT_BYTES) -> bytes:
    """At most ``limit`` bytes of a regular file: more is refused, never read into memory."""
    with open_regular(path, what, fix) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileError(f"{what} {path}: larger than the {limit:,}-byte limit; {fix}")
    return data


def read_text(path: Path, what: str, fix: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """A regular UTF-8 text file, refused in one line if it is anything else."""
    data = read_bytes(path, what, fix, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(f"{what} {path}: not UTF-8 text (a binary file?); {fix}") from None


def write_text_atomic(path: Path, text: str, what: str, fix: str) -> None:
    """Replace ``path`` whole or not at all; on a write error (full disk, read-only) nothing half-written stays."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if path.is_dir():
        raise FileError(f"{what} {path}: is a folder; {fix}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise FileError(f"{what} {path}: cannot write ({exc.strerror}); {fix}") from None
