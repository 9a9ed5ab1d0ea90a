"""Files written whole or not at all: the data goes to a file nobody can see, flushed to disk, then
put in place over the target by a rename (atomic within one folder on POSIX filesystems). A kill
or a full disk mid-write leaves the previous file as it was; no reader ever sees half a file.

The unseen file is anonymous where the filesystem allows (Linux ``O_TMPFILE``: it has no name
until it is complete, so even a SIGKILL leaves nothing behind); elsewhere it is a hidden temporary
beside the target (``.NAME.PID.tmp``), removed on any error or signal turned exception; after a
SIGKILL the next writer in that folder removes it (``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


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


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not): the
    owner of a temporary file, or of a DDP peer's heartbeat, on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: Path, name: str = "*") -> None:
    """Temporary files or folders (of ``name``) of writes whose process died (a SIGKILL mid-save where
    the filesystem has no anonymous files leaves one behind, as one mid-way through a folder does)."""
    for path in folder.glob(f".{name}.*.tmp") if folder.is_dir() else []:
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_atomically(temporary: Path, target: Path) -> None:
    """Rename ``temporary`` over ``target`` and make the rename durable (fsync of the folder)."""
    os.replace(temporary, target)
    _sync_folder(target.parent)


def _anonymous(folder: Path) -> int | None:
    """A nameless file in ``folder`` (``O_TMPFILE``), None where the system or filesystem has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def _name_anonymous(descriptor: int, path: Path) -> None:
    """Link an ``O_TMPFILE`` file to ``path`` (``linkat`` following ``/proc/self/fd``'s link: what
    ``os.link`` does only when given a directory descriptor)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        os.link(str(descriptor), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


@contextlib.contextmanager
def staged(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; when the block ends without error it is
    flushed to disk and put in place over ``path`` atomically. On any error (or a signal turned
    exception) ``path`` is unchanged and nothing is left; an ``OSError`` names ``path``."""
    target = Path(path)
    temporary = temporary_beside(target)
    descriptor = _anonymous(target.parent)
    named = descriptor is None
    try:
        handle = open(temporary, "xb") if named else os.fdopen(descriptor, "wb")
    except OSError as error:
        if descriptor is not None:
            os.close(descriptor)
        raise OSError(error.errno, os.strerror(error.errno) if error.errno else str(error), str(target)) from error
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if not named:  # give the complete file a name beside the target, then rename it over
                _name_anonymous(handle.fileno(), temporary)
        replace_atomically(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno and str(error.filename or "") != str(target):
            raise OSError(error.errno, os.strerror(error.errno), str(target)) from error
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (text as UTF-8); on failure ``path`` is unchanged and
    no temporary file is left."""
    with staged(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
