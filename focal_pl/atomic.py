"""Files written whole or not at all: a temporary file beside the target, flushed to disk, then
renamed over it (a rename within one folder is atomic on POSIX filesystems). A kill or a full disk
mid-write leaves the previous file as it was; no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Give an OSError raised inside the block the file name ``path`` when it has none (a write
    that fails on a full disk raises one without), so that the one-line error can name the file."""
    try:
        yield
    except OSError as error:
        if error.filename or not error.errno:
            raise
        raise OSError(error.errno, os.strerror(error.errno), str(path)) from error


def temporary_beside(path: Path) -> Path:
    """The temporary name a write to ``path`` goes through (hidden, unique to this process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def replace_atomically(temporary: Path, target: Path) -> None:
    """Rename ``temporary`` over ``target`` and make the rename durable (fsync of the folder)."""
    os.replace(temporary, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (text as UTF-8); on failure ``path`` is unchanged and
    no temporary file is left."""
    target = Path(path)
    temporary = temporary_beside(target)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        replace_atomically(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno:  # name the file the caller asked for
            raise OSError(error.errno, os.strerror(error.errno), str(target)) from error
        raise
